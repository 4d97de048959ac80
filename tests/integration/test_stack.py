"""The stack runs the Procfile's processes as deployed (launcher.py), and lets a test stop, start and double one."""

from pathlib import Path

from tests.integration.conftest import wait_for


def argv(stack, name: str) -> list[str]:
    return Path(f"/proc/{stack.processes[name].pid}/cmdline").read_bytes().decode().split("\0")


def test_the_worker_and_the_notifier_consume_their_own_queues_as_the_procfile_says(stack):
    worker, notifier = argv(stack, "worker"), argv(stack, "notifier")

    assert worker[worker.index("--queues") + 1] == "celery"
    assert notifier[notifier.index("--queues") + 1] == "notifications"
    # the Procfile's variables, expanded from the stack's environment
    assert worker[worker.index("--concurrency") + 1] == stack.env["WORKER_CONCURRENCY"]
    assert "beat" in argv(stack, "beat") and str(stack.sandbox_port) in argv(stack, "sandbox")


def test_a_second_beat_runs_beside_the_first_and_a_stopped_notifier_starts_again(stack):
    stack.start_beat("beat-2")
    try:
        wait_for(lambda: b"Sending due task" in stack.log("beat-2"), what="the second beat to send a periodic task")
        assert stack.running("beat")
    finally:
        stack.stop("beat-2")

    stack.stop("notifier")
    assert not stack.running("notifier") and stack.running("worker")
    stack.start_notifier()

    assert b" ready." in stack.log("notifier", since_start=True)
    assert stack.running("beat") and not stack.running("beat-2")

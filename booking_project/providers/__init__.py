"""The provider layer below every app (DESIGN.md "Where things live"): HTTP with timeouts, access tokens, the four
kinds of answer (`outcomes`), one backoff, and what Feishu's open platform shares between the meeting and the
calendar clients. `meetings_app` and `calendar_app` build their clients on it and never import each other."""

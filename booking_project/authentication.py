"""Token authentication with the token → user lookup remembered briefly in each process.

The counselor page polls a session every 2 s and every API request carries the token: looking it up each time
is one query per request, often the only one besides the answer's. So a token found (with an active user) is
remembered in this process for TOKEN_AUTH_CACHE_SECONDS. Revocation therefore takes effect within that time in
every process: a deleted token or a deactivated user is refused at most TOKEN_AUTH_CACHE_SECONDS later (at
once in the process that made the change, which forgets the entries it touched). A token that was not found
is never remembered, so a new token works at once. Setting 0 turns the memory off.

Each request gets its own copies of the remembered user and token: what a request caches on its user (a
related profile, say) never reaches another request.
"""

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

# At most this many tokens are remembered per process; the least recently used is forgotten first.
TOKEN_AUTH_CACHE_ENTRIES = 4096


class TokenMemory:
    """Tokens found lately, with their user, until their time is up (thread-safe: gunicorn runs threads)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, entries: int = TOKEN_AUTH_CACHE_ENTRIES):
        self.clock = clock
        self.entries = entries
        self._lock = threading.Lock()
        self._found: OrderedDict[str, tuple[float, Token]] = OrderedDict()

    def get(self, key: str) -> Token | None:
        with self._lock:
            found = self._found.get(key)
            if found is None:
                return None
            if self.clock() >= found[0]:
                del self._found[key]
                return None
            self._found.move_to_end(key)
            return found[1]

    def put(self, key: str, token: Token) -> None:
        seconds = settings.TOKEN_AUTH_CACHE_SECONDS
        if seconds <= 0:
            return
        with self._lock:
            self._found[key] = (self.clock() + seconds, token)
            self._found.move_to_end(key)
            while len(self._found) > self.entries:
                self._found.popitem(last=False)

    def forget_token(self, key: str) -> None:
        with self._lock:
            self._found.pop(key, None)

    def forget_user(self, user_id) -> None:
        with self._lock:
            for key in [k for k, (_, token) in self._found.items() if token.user_id == user_id]:
                del self._found[key]

    def clear(self) -> None:
        with self._lock:
            self._found.clear()


token_memory = TokenMemory()


class RememberingTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication (same header, same refusals, same 401 with `WWW-Authenticate: Token`), with
    the lookup remembered in `token_memory` (see the module's docstring)."""

    def authenticate_credentials(self, key):
        token = token_memory.get(key)
        if token is None:
            user, token = super().authenticate_credentials(key)  # refuses unknown tokens and inactive users
            token_memory.put(key, token)
        token = _fresh_copy(token)
        return token.user, token


def _fresh_copy(token: Token) -> Token:
    """The token and its user, copied so that nothing one request loads onto them is seen by another."""
    user = _model_copy(token.user)
    token = _model_copy(token)
    token.user = user
    return token


def _model_copy(instance):
    # What Model.__getstate__ does for copy.copy (its own state, an empty related-object cache), without the
    # pickling protocol's detour.
    clone = instance.__class__.__new__(instance.__class__)
    clone.__dict__ = instance.__dict__.copy()
    clone._state = copy.copy(instance._state)
    clone._state.fields_cache = {}
    return clone


def _token_deleted(sender, instance: Token, **kwargs) -> None:
    token_memory.forget_token(instance.key)


def _user_saved(sender, instance, **kwargs) -> None:
    token_memory.forget_user(instance.pk)


post_delete.connect(_token_deleted, sender=Token, dispatch_uid="token_memory_token_deleted")
post_delete.connect(_user_saved, sender=get_user_model(), dispatch_uid="token_memory_user_deleted")
post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="token_memory_user_saved")

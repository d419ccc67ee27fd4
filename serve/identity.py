"""Which conversation a chat request belongs to: only ever the one its client names.

A conversation id comes from a request header (``X-Conversation-Id``; Open WebUI's
``X-OpenWebUI-Chat-Id``, see :data:`~kever.serve.config.CONVERSATION_HEADERS`); without one,
the request starts a new conversation (requests are stateless unless they name one), whose id
comes back in the ``X-Conversation-Id`` response header and ``kever.conversation_id``. The
OpenAI ``user`` field names an end user, not a conversation: it joins nothing (a harness that
sets it on every request must not see its second photo answered as a follow-up of the first).
A conversation is never joined by what its messages say either.
"""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request

from kever.serve import openai_errors as oe

_CID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def conversation_id(request: Request, headers: tuple[str, ...]) -> tuple[str, bool]:
    """(id, named): ``named`` is False for a new conversation the client did not name. The id is
    what the client sends back in ``X-Conversation-Id`` to continue the conversation."""
    for name in headers:
        value = request.headers.get(name)
        if value:
            if not _CID.match(value):
                raise oe.bad_request(f"{name} must be 1-128 characters of letters, digits and ._:@-",
                                     "invalid_conversation_id")
            return value, True
    return uuid.uuid4().hex, False

"""kever.serve: an OpenAI-compatible chat server over the reasoner (``kever serve``).

The top floor: it uses the reasoner (``kever.agent``) and the ground floor (``kever``);
nothing below imports it. ``create_app(config, reasoner)`` builds the FastAPI app; the
reasoner is built once at start-up and shared by every request (one model call at a time,
behind a bounded queue).
"""

from kever.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(*args, **kwargs):  # lazy: fastapi is an optional extra
    from kever.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)

"""``fastvar serve``: a page to explore a simulation live, and the HTTP API behind it.

The API takes the command line's option names and values (:mod:`fastvar.options`) and
returns :meth:`fastvar.Result.to_json`'s document; the page (``static/``) draws it with
the Plotly.js bundled in the ``plotly`` package, so nothing is fetched from the internet.
Needs ``pip install 'fastvar[serve]'`` (Starlette, uvicorn, plotly); this module loads
Starlette only when :func:`create_app` and the rest are first used, so that the command
line can describe ``fastvar serve`` without it.
"""
from __future__ import annotations

import importlib

DEFAULT_MAX_SECONDS = 5.0  # a request estimated to run longer is refused

__all__ = ["DEFAULT_MAX_SECONDS", "create_app", "request_from_query", "warm_up"]


def __getattr__(name: str):
    if name in ("create_app", "request_from_query", "warm_up"):
        return getattr(importlib.import_module(".app", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""``mmrec serve``: the HTTP API and web page over one ``mmrec.Library`` (see ``create_app``)."""

from __future__ import annotations

from mmrec.server.app import create_app
from mmrec.server.bind import check_bind

__all__ = ["check_bind", "create_app"]

"""HTTP routes, one module per resource: :mod:`~.status`, :mod:`~.models`, :mod:`~.projects`,
:mod:`~.rounds` (proofs and their verification), :mod:`~.trainers`, :mod:`~.aggregators` and
:mod:`~.transactions`; and :mod:`~.docs`, the API's interactive documentation (``/api/docs``).

Each module holds both of its resource's routers: ``api`` (JSON, mounted under ``/api`` and in the
OpenAPI schema) and, where the resource has pages, ``pages`` (HTML, left out of the schema). One
module per resource rather than an API package and a pages package, because a resource's page and
its JSON answer are two renderings of the same service call: side by side, a change to what a
project shows is made once and seen in both, and each module stays short. Routes only translate
HTTP to service calls and back; what they show comes from :mod:`marketplace.web.services`, what
they need from :mod:`marketplace.web.deps`, and errors become answers in :mod:`marketplace.web.errors`.

:data:`api_router` and :data:`pages_router` collect them. Within a module, fixed paths come before
parametrized ones that would match them too (``/projects/new`` before ``/projects/{project_id}``,
``/tx/create-project`` and ``/tx/join`` before ``/tx/{action}``).
"""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.web.errors import API_ERRORS
from marketplace.web.routes.accounts import api as accounts_api
from marketplace.web.routes.accounts import pages as accounts_pages
from marketplace.web.routes.aggregators import api as aggregators_api
from marketplace.web.routes.docs import pages as docs_pages
from marketplace.web.routes.models import api as models_api
from marketplace.web.routes.projects import api as projects_api
from marketplace.web.routes.projects import pages as projects_pages
from marketplace.web.routes.round_pages import pages as round_pages
from marketplace.web.routes.rounds import api as rounds_api
from marketplace.web.routes.rounds import pages as rounds_pages
from marketplace.web.routes.status import api as status_api
from marketplace.web.routes.trainers import api as trainers_api
from marketplace.web.routes.trainers import pages as trainers_pages
from marketplace.web.routes.transactions import api as transactions_api

#: The JSON API: every resource's ``api`` router under ``/api``, documented error answers on each.
api_router = APIRouter(prefix="/api", tags=["api"], responses=API_ERRORS)
for router in (status_api, models_api, projects_api, rounds_api, trainers_api, aggregators_api, transactions_api):
    api_router.include_router(router)
api_router.include_router(accounts_api)

#: The HTML pages (not in the OpenAPI schema).
pages_router = APIRouter(include_in_schema=False)
for router in (docs_pages, projects_pages, rounds_pages, round_pages, trainers_pages):
    pages_router.include_router(router)
pages_router.include_router(accounts_pages)

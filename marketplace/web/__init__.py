"""The web UI and JSON API: projects, rounds and proofs, posting jobs and joining with a browser wallet.

Laid out like the FastAPI full-stack template:

* :mod:`~marketplace.web.main`: ``create_app(settings)`` wires everything together;
* :mod:`~marketplace.web.routes`: one module per resource (its JSON API and its pages);
* :mod:`~marketplace.web.deps`: what routes take (settings, services, the page renderer) from ``app.state``;
* :mod:`~marketplace.web.services`: read models and unsigned transactions, independent of HTTP;
* :mod:`~marketplace.web.errors`: the one mapping from errors to HTTP answers;
* :mod:`~marketplace.web.indexer`: the SQLite event index (with :mod:`~marketplace.web.proof_docs`,
  rounds' proof documents from IPFS); :mod:`~marketplace.web.schemas`, :mod:`~marketplace.web.forms`,
  :mod:`~marketplace.web.templating` and :mod:`~marketplace.web.filters`: shapes, the job form, templates;
* :mod:`~marketplace.web.settings`; :mod:`~marketplace.web.server` runs the app in a thread (demo, tests).

``marketplace web`` serves it.
"""

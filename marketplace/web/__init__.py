"""The web UI and JSON API: projects, rounds and proofs, posting jobs and joining with a browser wallet.

``create_app(settings)`` (in :mod:`marketplace.web.app`) builds the FastAPI app; ``marketplace web``
serves it; :func:`marketplace.web.server.serve_in_background` runs it in a thread.
"""

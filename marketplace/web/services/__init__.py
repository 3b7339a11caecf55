"""What the pages and the JSON API show and do, independent of HTTP.

Read models (from the event index plus a few live chain calls):

* :mod:`~marketplace.web.services.projects`: the project list, a project and its detail (trainers,
  rounds, payouts);
* :mod:`~marketplace.web.services.rounds`: finalized rounds, a round's proof and its verification;
* :mod:`~marketplace.web.services.trainers`: a trainer's reliability, track record and history;
  :mod:`~marketplace.web.services.track_records` puts a track record (earned, reserved, available) and a
  project's reliability bar (the available record it requires and a join reserves) in words;
* :mod:`~marketplace.web.services.aggregators`: an aggregator's track record (rounds, rejections, disputes
  lost) and its projects; :mod:`~marketplace.web.services.disputes` puts rejections and flags in words;
* :mod:`~marketplace.web.services.models`: the model architectures (and pinning initial weights).

Writes: :mod:`~marketplace.web.services.transactions` builds unsigned transactions for the user's
wallet, simulates them, and reports a sent transaction's status; the server never signs.

:mod:`~marketplace.web.services.context` is the deployment they all read (chain, market, index);
:mod:`~marketplace.web.services.container` bundles them; :mod:`~marketplace.web.services.errors` is what
they raise.
"""

"""The aggregator's side: fetch a round's updates, flag, score, aggregate, prove, finalize."""

"""The trainer's side: join projects, train locally each round, pin the update, commit on chain."""

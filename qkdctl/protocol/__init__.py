"""Alice/Bob post-processing roles exchanging authenticated messages over a channel."""

"""Reading attention: the recorder, per-statement features, last-token views, memory."""

"""Reading attention: the recorder (with head masking and key knockout), per-statement features, and mechprobe.record for a notebook."""

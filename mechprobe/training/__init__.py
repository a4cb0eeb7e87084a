"""Training: the fine-tuning loop and the k-th smallest and ProofWriter set-ups."""

"""Training: data, losses, the resumable loop, and weight export."""

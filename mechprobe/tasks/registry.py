"""The shipped tasks, imported so that they register themselves (mechprobe/tasks/base.py)."""

from mechprobe.tasks import arc, jsonl, ksmallest, proofwriter  # noqa: F401

__all__ = ["arc", "jsonl", "ksmallest", "proofwriter"]

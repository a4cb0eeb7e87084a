"""Peak extra memory of a block of work: CUDA peak allocation, or the process's peak RSS on Linux."""

import torch


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


class PeakMemory:
    """with PeakMemory(device) as peak: ...; then peak.extra_bytes (None where not measurable).

    On the CPU it resets the kernel's peak-RSS counter (VmHWM) on entry, so the peak is this
    block's, measured above the resident size at entry.
    """

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.extra_bytes = None

    def __enter__(self):
        try:
            if self.cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                self.before = torch.cuda.memory_allocated()
            else:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.before = _status("VmRSS")
        except OSError:
            self.before = None
        return self

    def __exit__(self, *exc):
        if self.before is not None:
            if self.cuda:
                torch.cuda.synchronize()
                self.extra_bytes = torch.cuda.max_memory_allocated() - self.before
            else:
                self.extra_bytes = _status("VmHWM") - self.before
        return False

"""What the bench scripts measure of a profiler they run as a child."""
import resource


def children_cpu():
    """CPU seconds (user + system) of every child waited for so far."""
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def late_share(report):
    """(late samples, samples due) of a gilscope JSON report."""
    taken = report["samples"] + report["late_samples"]
    return report["late_samples"], taken

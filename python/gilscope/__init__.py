"""gilscope's binary, installed by pip beside this package: see `python -m gilscope --help`."""
import os
import sys
import sysconfig


def find_gilscope_bin():
    """The path of the gilscope binary this package was installed with."""
    name = "gilscope" + (sysconfig.get_config_var("EXE") or "")
    candidates = [sysconfig.get_path("scripts")]
    user = sysconfig.get_path("scripts", scheme="posix_user") if os.name == "posix" else None
    if user:
        candidates.append(user)
    candidates.append(os.path.join(sys.prefix, "bin"))
    for directory in candidates:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError("the gilscope binary is not installed beside this package "
                            "(looked in %s)" % ", ".join(candidates))

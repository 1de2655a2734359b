"""Where the gilscope binary is: `GILSCOPE_BIN` when set, else beside this package."""
import os
import sys
import sysconfig


def find_gilscope_bin():
    """The path of the gilscope binary: `$GILSCOPE_BIN`, or the one this package was
    installed with."""
    override = os.environ.get("GILSCOPE_BIN")
    if override:
        return override
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
                            "(looked in %s; set GILSCOPE_BIN to its path)"
                            % ", ".join(candidates))

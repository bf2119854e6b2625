"""Turns an image folder or a TFDS dataset into verified, resumable TFRecord shards.

The plan is fixed before any shard is written: scan (hash + header gate) ->
split -> duplicates -> seeded shuffle -> contiguous slices into shards. Shards are
then written one by one to a temp name and published (`fileio`), each followed by a small
sidecar recording its plan digest, size and sha256, so a rerun after kill -9
keeps every complete shard and ends byte-identical to an uninterrupted run. The
manifest is written last; its presence means the dataset is complete.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import math
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

import visiontrain
from visiontrain import config as config_lib
from visiontrain import fileio
from visiontrain.config import ConvertConfig
from visiontrain.errors import UserError
from visiontrain.pipelines import gate_pool, label_files, manifest, schema, sources, tfds_source

_SIDECAR_DIR = ".partial"
# At least this many shards per split (when each keeps >= _MIN_RECORDS_PER_SHARD):
# enough files for 8 input pipelines or interleave cycles to read disjoint shards.
_MIN_SHARDS = 8
_MIN_RECORDS_PER_SHARD = 64
# Often enough that a long scan or write never looks hung, rarely enough to read.
PROGRESS_SECONDS = 10.0


class BuildError(UserError):
    """The build could not finish as asked (e.g. --strict with rejected files)."""


def _load_source(cfg: ConvertConfig) -> sources.Source:
    if cfg.source.startswith("tfds:"):
        return tfds_source.load_tfds(cfg.source[len("tfds:") :], cfg.tfds_data_dir)
    if label_files.is_label_file(cfg.source):
        return label_files.scan_label_file(cfg.source)
    source_dir, output_dir = os.path.realpath(cfg.source), os.path.realpath(cfg.output)
    if os.path.isdir(source_dir) and (output_dir + os.sep).startswith(source_dir + os.sep):
        raise ValueError(
            f"--output={cfg.output} is inside --source={cfg.source}; the shards would be "
            "scanned as images next time. Pick an output directory outside the source"
        )
    return sources.scan_folder(cfg.source)


def find_duplicates(
    items: list[sources.SourceItem], hashes: dict[str, str]
) -> tuple[list[dict], list[dict], set[str]]:
    """Groups items by content hash.

    Returns:
      (within_split, across_splits, droppable relpaths). Within a split the first
      in sorted order is kept; for train/validation leakage the train copies go.
    """
    groups: dict[str, dict[str, list[str]]] = {}
    for item in sorted(items, key=lambda i: i.relpath):
        groups.setdefault(hashes[item.relpath], {}).setdefault(item.split, []).append(
            item.relpath
        )
    within, across, drop = [], [], set()
    for digest, by_split in sorted(groups.items()):
        for split, files in sorted(by_split.items()):
            if len(files) > 1:
                within.append({"split": split, "sha256": digest, "kept": files[0],
                               "duplicates": files[1:]})
                drop.update(files[1:])
        if len(by_split) > 1:
            across.append({"sha256": digest, **by_split})
            drop.update(by_split.get("train", []))
    return within, across, drop


def conflicting_labels(items: list[sources.SourceItem], hashes: dict[str, str],
                       labels: tuple[str, ...]) -> list[dict]:
    """Groups of byte-identical images stored under different labels: all but one
    is mislabelled, and which cannot be told. Each is {"sha256", "files": {relpath: label}}.
    """
    groups: dict[str, dict[str, str]] = {}
    for item in sorted(items, key=lambda i: i.relpath):
        names = "|".join(labels[i] for i in sources.label_ids(item.label))
        groups.setdefault(hashes[item.relpath], {})[item.relpath] = names
    return [{"sha256": digest, "files": files} for digest, files in sorted(groups.items())
            if len(set(files.values())) > 1]


def _report_duplicates(cfg: ConvertConfig, source: sources.Source,
                       accepted: list[sources.SourceItem], hashes: dict[str, str]
                       ) -> tuple[list[sources.SourceItem], dict[str, list[dict]]]:
    """Logs copies and label conflicts, drops them with --dedupe: (items kept, the
    manifest's "duplicates")."""
    within, across, droppable = find_duplicates(accepted, hashes)
    if within or across:
        logging.warning("%d duplicate group(s) within a split, %d across train/validation%s",
                        len(within), len(across), "; dropping" if cfg.dedupe else "")
    conflicts = conflicting_labels(accepted, hashes, source.labels)
    if conflicts:
        example = ", ".join(f"{f} as {n}" for f, n in conflicts[0]["files"].items())
        logging.warning(
            "%d image(s) are stored under different labels (e.g. %s): all but one copy "
            "is mislabelled%s; manifest.json lists them under "
            "duplicates.conflicting_labels", len(conflicts), example,
            "; --dedupe drops every copy" if cfg.dedupe else "")
        droppable |= {f for group in conflicts for f in group["files"]}
    if cfg.dedupe:
        accepted = [i for i in accepted if i.relpath not in droppable]
    return accepted, {"within_split": within, "across_splits": across,
                      "conflicting_labels": conflicts}


def plan_num_shards(records: int, total_bytes: int, cfg: ConvertConfig) -> int:
    """Shard count: fixed `num_shards`, else by size, raised toward 8 for parallel reads."""
    if cfg.num_shards:
        return max(1, min(cfg.num_shards, records))
    by_size = math.ceil(total_bytes / (cfg.shard_size_mb * 2**20))
    return max(1, min(records, max(by_size, min(_MIN_SHARDS, records // _MIN_RECORDS_PER_SHARD))))


def plan_shards(
    items: list[sources.SourceItem], split_index: int, sizes: dict[str, int], cfg: ConvertConfig
) -> list[list[sources.SourceItem]]:
    """Seeded shuffle of the sorted items, cut into contiguous, near-equal slices."""
    ordered = sorted(items, key=lambda i: i.relpath)
    order = np.random.default_rng([cfg.seed, split_index]).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    count = plan_num_shards(len(shuffled), sum(sizes[i.relpath] for i in shuffled), cfg)
    bounds = np.linspace(0, len(shuffled), count + 1).round().astype(int)
    return [shuffled[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _plan_digest(shard: list[sources.SourceItem], hashes: dict[str, str], cfg) -> str:
    encoding = [cfg.keep_png, cfg.jpeg_quality, cfg.max_side, cfg.max_pixels]
    rows = [[i.relpath, i.label, hashes[i.relpath]] for i in shard]
    return hashlib.sha256(json.dumps([encoding, rows]).encode()).hexdigest()


def _resumable(out_dir: str, name: str, digest: str) -> dict | None:
    sidecar = os.path.join(out_dir, _SIDECAR_DIR, name + ".json")
    path = os.path.join(out_dir, name)
    if not (os.path.exists(sidecar) and os.path.exists(path)):
        return None
    with open(sidecar) as f:
        record = json.load(f)
    if record["plan"] != digest or os.path.getsize(path) != record["shard"]["bytes"]:
        return None
    return record if fileio.sha256_file(path) == record["shard"]["sha256"] else None


class Progress:
    """Logs `done/total` at a steady wall-clock interval, however uneven the work is."""

    def __init__(self, task: str, total: int, interval: float = PROGRESS_SECONDS):
        self.task, self.total, self.interval = task, total, interval
        self.done, self.start = 0, time.monotonic()
        self.last = self.start

    def update(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last >= self.interval or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-6)
            eta = (self.total - self.done) / max(rate, 1e-6)
            logging.info("%s: %d/%d images, %.0f img/s, ETA %.0f s",
                         self.task, self.done, self.total, rate, eta)


def _write_shard(prepared, out_dir, name, shard, labels, progress) -> tuple[str, dict]:
    class_counts: dict[str, int] = {}
    records = 0
    tmp = fileio.temp_path(os.path.join(out_dir, name))
    with tf.io.TFRecordWriter(tmp) as writer:
        for item in shard:
            result = next(prepared)
            progress.update()
            if isinstance(result, str):
                raise BuildError(
                    f"{item.relpath} passed the gate when scanned but not when written "
                    f"({result}); did it change during the build? Rerun to rescan"
                )
            ids = sources.label_ids(item.label)
            example = schema.make_example(
                encoded=result.encoded, image_format=result.format, label=item.label,
                text=schema.TEXT_SEPARATOR.join(labels[i] for i in ids),
                height=result.height, width=result.width,
                filename=item.relpath, sha256=hashlib.sha256(result.encoded).hexdigest(),
                orientation=result.orientation,
            )
            # Map fields serialize in hash order unless asked; byte-identical reruns need this.
            writer.write(example.SerializeToString(deterministic=True))
            records += 1
            for i in ids:
                class_counts[labels[i]] = class_counts.get(labels[i], 0) + 1
    entry = {"file": name, "records": records, "bytes": os.path.getsize(tmp),
             "sha256": fileio.sha256_file(tmp)}
    return tmp, {"shard": entry, "class_counts": class_counts}


def _remove_stale(out_dir: str, keep: set[str]) -> None:
    for name in os.listdir(out_dir):
        stale_shard = name.endswith(".tfrecord") and name.startswith(sources.SPLITS)
        if (stale_shard and name not in keep) or name.startswith(fileio.TMP_PREFIX):
            os.remove(os.path.join(out_dir, name))


def _write_split(pool, cfg, split, shards, hashes, labels) -> dict:
    names = [schema.shard_name(split, i, len(shards)) for i in range(len(shards))]
    totals: dict[str, int] = {}
    entries = []
    digests = [_plan_digest(shard, hashes, cfg) for shard in shards]
    kept = [_resumable(cfg.output, n, d) for n, d in zip(names, digests)]
    # One ordered stream over every shard still to write keeps all workers busy
    # across shard boundaries.
    todo = [(item, cfg) for shard, k in zip(shards, kept) if k is None for item in shard]
    prepared = pool.imap(gate_pool.prepare_one, todo, chunksize=4)
    progress = Progress(f"writing {split}", len(todo))
    for name, shard, digest, record in zip(names, shards, digests, kept):
        if record is None:
            tmp, record = _write_shard(prepared, cfg.output, name, shard, labels, progress)
            record["plan"] = digest
            # Sidecar first: a shard under its final name always has one to verify against.
            sidecar = os.path.join(cfg.output, _SIDECAR_DIR, name + ".json")
            fileio.write_json_atomic(sidecar, record)
            fileio.publish(tmp, os.path.join(cfg.output, name))
        entries.append(record["shard"])
        for label, n in record["class_counts"].items():
            totals[label] = totals.get(label, 0) + n
    counts = {name: totals.get(name, 0) for name in labels}
    return {"num_records": sum(e["records"] for e in entries), "class_counts": counts,
            "shards": entries}


def _fail_if_strict(cfg: ConvertConfig, skipped: list[dict]) -> None:
    if cfg.strict and skipped:
        lines = "\n  ".join(f"{s['file']}: {s['reason']}" for s in skipped)
        raise BuildError(f"--strict: {len(skipped)} file(s) rejected:\n  {lines}")


def _empty_split(split: str, cfg: ConvertConfig, source: sources.Source,
                 accepted: list[sources.SourceItem], skipped: list[dict]) -> str:
    """Why no image reached `split`, and what to do: the first build of a small set."""
    head = f"no usable images for the {split} split of {cfg.source}"
    if not accepted:
        example = f", e.g. {skipped[0]['file']}: {skipped[0]['reason']}" if skipped else ""
        return f"{head}: none of its {len(skipped)} file(s) passed the format check{example}"
    if split == "train":
        return (f"{head}: every usable image is assigned to validation; add a train/ folder "
                "(or rows with split train) beside val/")
    if all(item.split for item in source.items):
        return (f"{head}: the source assigns every image to a split and none to validation; "
                "add a val/ (or validation/) folder, or leave the split out (no train/ folder, "
                f"no split column) so that --val_fraction={cfg.val_fraction} of each class is "
                "held out")
    return (f"{head}: every class has a single usable image, and --val_fraction holds one out "
            "only from a class of 2 or more; add images, or a val/ folder with some of each "
            "class")


def _untrained_classes(
    cfg: ConvertConfig, source: sources.Source, items: list[sources.SourceItem]
) -> list[str]:
    """The classes no training item carries, refused unless `cfg.allow_untrained_classes`.

    Such a class still gets an output in the head, which never trains yet is exported
    and predicted for unrelated images; multi-label, its threshold is then tuned on
    validation alone.
    """
    train, validation = collections.Counter(), collections.Counter()
    for item in items:
        (train if item.split == "train" else validation).update(sources.label_ids(item.label))
    untrained = [i for i in range(len(source.labels)) if not train[i]]
    if not untrained:
        return []
    named = manifest.name_classes([
        f"{source.labels[i]} ({validation[i]} validation image(s))" if validation[i]
        else f"{source.labels[i]} (no usable images)" for i in untrained])
    why = "the model would get an output for each that never trains" + (
        ", with a threshold tuned on validation alone" if source.multi_label else "")
    if not cfg.allow_untrained_classes:
        raise ValueError(
            f"{len(untrained)} class(es) of --source={cfg.source} have no training images: "
            f"{named}; {why}. Add training images for them, remove them from the source, or "
            "pass --allow_untrained_classes to build anyway"
        )
    logging.warning("--allow_untrained_classes: %d class(es) have no training images: %s; %s",
                    len(untrained), named, why)
    return [source.labels[i] for i in untrained]


def build(cfg: ConvertConfig) -> dict[str, Any]:
    """Converts `cfg.source` into shards, labels.json and manifest.json in `cfg.output`.

    Returns:
      The manifest, as written.

    Raises:
      ValueError: a bad source (missing, empty class, < 2 classes, unknown TFDS name), or
        a class without training images and not `allow_untrained_classes`.
      BuildError: `strict` and some files were rejected; nothing is written.
    """
    workers = cfg.num_workers or os.cpu_count() or 1
    with gate_pool.make_pool(workers) as pool:
        source = _load_source(cfg)
        logging.info("read %s as %s: %d files, %d classes", cfg.source, source.layout or "TFDS",
                     len(source.items) + len(source.stray), len(source.labels))
        for link, reason in source.links:
            logging.warning("%s: %s", link, reason)
        scanned = pool.imap(gate_pool.scan_one, [(i, cfg.max_pixels) for i in source.items],
                            chunksize=16)
        hashes, sizes, accepted = {}, {}, []
        skipped = [{"file": f, "reason": r} for f, r in source.stray]
        progress = Progress("scanning", len(source.items))
        for item, (digest, size, reason) in zip(source.items, scanned):
            progress.update()
            if reason:
                skipped.append({"file": item.relpath, "reason": reason})
            else:
                hashes[item.relpath], sizes[item.relpath] = digest, size
                accepted.append(item)
        logging.info("found %d files: %d pass the gate, %d skipped", len(source.items)
                     + len(source.stray), len(accepted), len(skipped))
        skipped.sort(key=lambda s: s["file"])
        _fail_if_strict(cfg, skipped)
        accepted = sources.stratified_split(accepted, cfg.val_fraction, cfg.seed)
        accepted, duplicates = _report_duplicates(cfg, source, accepted, hashes)
        plans = {}
        for index, split in enumerate(sources.SPLITS):
            members = [i for i in accepted if i.split == split]
            if not members:
                raise ValueError(_empty_split(split, cfg, source, accepted, skipped))
            plans[split] = plan_shards(members, index, sizes, cfg)
        untrained = _untrained_classes(cfg, source, accepted)
        # Nothing is written before this point, so a refused build leaves OUT as it was.
        os.makedirs(os.path.join(cfg.output, _SIDECAR_DIR), exist_ok=True)
        if os.path.exists(os.path.join(cfg.output, schema.MANIFEST_FILE)):
            # Until the new manifest lands, no reader may trust the old one.
            os.remove(os.path.join(cfg.output, schema.MANIFEST_FILE))
        _remove_stale(cfg.output, {
            schema.shard_name(s, i, len(p)) for s, p in plans.items() for i in range(len(p))})
        for split, plan in plans.items():
            # One pass over the plan: per class it would be classes x images.
            counts = collections.Counter(i for s in plan for m in s
                                         for i in sources.label_ids(m.label))
            sizes = sorted(counts.get(i, 0) for i in range(len(source.labels)))
            logging.info("%s: %d images, %d to %d per class (median %d)", split,
                         sum(map(len, plan)), sizes[0], sizes[-1], sizes[len(sizes) // 2])
        splits = {s: _write_split(pool, cfg, s, p, hashes, source.labels) for s, p in plans.items()}
    result = {
        "format_version": schema.FORMAT_VERSION, "tool": "visiontrain-data",
        "tool_version": visiontrain.__version__,
        "source": cfg.source, "flags": config_lib.to_dict(cfg),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "labels": list(source.labels), "num_classes": len(source.labels), "splits": splits,
        "untrained_classes": untrained,
        schema.TASK: schema.MULTI_LABEL if source.multi_label else schema.SINGLE_LABEL,
        "skipped": skipped, "layout": source.layout,
        "links_not_followed": [{"link": k, "reason": r} for k, r in source.links],
        "duplicates": duplicates,
    }
    fileio.write_json_atomic(os.path.join(cfg.output, schema.LABELS_FILE), list(source.labels))
    fileio.write_json_atomic(os.path.join(cfg.output, schema.MANIFEST_FILE), result)
    for name in os.listdir(os.path.join(cfg.output, _SIDECAR_DIR)):
        os.remove(os.path.join(cfg.output, _SIDECAR_DIR, name))
    os.rmdir(os.path.join(cfg.output, _SIDECAR_DIR))
    return result

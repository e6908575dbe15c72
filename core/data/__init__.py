"""Data in (a package): turn a folder or an uploaded .zip of class folders into an `ImageSet`, safely.

    ds, report = load_dataset("data/magnetic_tile", image_size=64)      # or "upload.zip"
    print(report.summary())                                             # counts + every skipped file
    grouping = find_groups(ds, "auto")                                  # parts: near-duplicates, one group
    train_pool, test = split(ds, test_per_class=20, seed=0, groups=grouping.groups)
    train = simulate_imbalance(train_pool, ratio=0.1, seed=0, normal_class="normal",
                               groups=[grouping.by_source()[s] for s in train_pool.sources])
    need = balance_targets(train.counts())                              # synthetic images per class
    protocol_counts(ds.counts(), 20, 0.1)                               # the same counts, without images

Layout: `root/<class>/**/*.{png,jpg,jpeg,bmp,tif,tiff,webp}` (extension case-insensitive). Classes are the
sorted folder names; each image's `source` is its posix path relative to the root ("crack/sub/a.png").

What a user can get wrong never crashes the loader:
- a file that cannot be used (empty, truncated, not an image, too small, a decompression bomb, outside any
  class folder, another extension) is skipped and listed with its reason in `DataReport.skipped`;
- a dataset that cannot be used at all (missing, no class folders, one class, a class with no readable
  image, too many classes) raises `DataError` saying what to do;
- an unsafe or broken archive raises `ArchiveError` before anything leaves the extraction folder.

Decisions (documented here because the UI and the CLI show their effects):
- Channels "auto": 1 when every loaded image is stored grayscale (Pillow modes 1, L, LA, I, I;16*, F);
  any other mode (RGB, palette, CMYK, ...) makes the dataset 3-channel, grayscale images then repeated on
  3 channels. An RGB file whose channels happen to be equal still counts as colour (no pixel inspection).
  Forcing 1 converts colour with Pillow's ITU-R 601-2 luma.
- Every image is squashed to image_size x image_size (aspect ratio not kept, as torchvision's
  Resize((s, s))): LANCZOS when shrinking, BILINEAR when only enlarging. JPEGs are first decoded at a
  reduced DCT scale no smaller than the target (Pillow's draft), which is much faster on big photos.
- Normalisation: EXIF orientation applied; 16-bit (and 32-bit int) grayscale divided by 257 (65535 -> 255,
  scaled, never clipped; values outside 0..65535 are min-max scaled); float images in 0..1 times 255, else
  min-max; palette -> RGB (RGBA when it has transparency); CMYK/YCbCr/LAB/HSV -> RGB; 1-bit -> L (0/255);
  transparency composited on white (defect images are usually photographed on a plain background; white
  keeps transparent margins from reading as dark defects).
- Duplicates: images whose decoded pixels are identical but that sit in two different classes are loaded
  and reported in `DataReport.duplicates` (a labelling problem the user should look at).
- Zip archives: a single top folder is unwrapped when it holds sub-folders; `__MACOSX/`, `.DS_Store`,
  `Thumbs.db`, `desktop.ini` and `._*` are ignored. Nested archives (.zip, .tar, .7z, .rar... inside the
  zip) are written out as plain files but never opened; loading lists them as skipped ("nested archive:
  not supported, unzip it first"), whether the zip was loaded directly or extracted first with
  `safe_extract_zip`. An archive that holds nothing but other archives raises `ArchiveError`. Symbolic links inside a
  dataset folder are followed only for files whose target stays inside the folder; linked folders are not
  followed (both reported as skipped).

Modules, each with one job (none imports another's private names):
- `archive`: upload limits (`Limits`) and safe zip extraction;
- `images`: decoding one file into a normalised square array, with the bomb and memory guards;
- `folder`: loading a class-folder tree (or a zip of one) and the `DataReport`;
- `sources`: the original files byte for byte (`DatasetFiles`), `load_images`, the reader process, user paths;
- `groups`: which images show one part (near-duplicates found from the pixels, a regex, a CSV, or none) and
  what a split leaks;
- `protocol`: split, folds, simulated imbalance (each by whole groups), balance targets, the normal class.
"""

from __future__ import annotations

from .archive import (BOMB_FLOOR_BYTES, Limits, human_size, resolve_limits, safe_extract_zip, shorten,
                      too_deep_message, too_many_folders_message)
from .folder import (REASON_CLASS_NAME, REASON_EMPTY, REASON_EXTENSION, REASON_NESTED, REASON_ROOT, DataReport,
                     SkippedFile, colliding_names, collision_message, load_dataset)
from .images import IMAGE_EXTENSIONS, REASON_NO_MEMORY, REASON_NOT_IMAGE
from .groups import Grouping, find_groups, leakage, pairwise_agreement
from .protocol import (ProtocolCounts, balance_targets, detect_normal_class, fold_split, imbalance_cap,
                       normal_class_guessed, normal_class_note, protocol_counts, resolve_normal_class,
                       simulate_imbalance, split)
from .sources import READER_MEMORY_BYTES, DatasetFiles, iter_images, load_dataset_apart, load_images, resolve_data_path

__all__ = ["Grouping", "find_groups", "leakage", "pairwise_agreement", "Limits", "SkippedFile", "DataReport", "safe_extract_zip", "load_dataset", "load_images",
           "iter_images", "colliding_names", "collision_message",
           "load_dataset_apart", "split", "simulate_imbalance", "balance_targets", "detect_normal_class",
           "resolve_normal_class", "normal_class_guessed", "normal_class_note", "fold_split", "imbalance_cap",
           "protocol_counts", "ProtocolCounts",
           "resolve_data_path", "IMAGE_EXTENSIONS", "DatasetFiles", "READER_MEMORY_BYTES", "BOMB_FLOOR_BYTES",
           "REASON_CLASS_NAME", "REASON_EMPTY", "REASON_EXTENSION", "REASON_NESTED", "REASON_ROOT",
           "REASON_NO_MEMORY", "REASON_NOT_IMAGE", "human_size", "resolve_limits", "shorten", "too_deep_message",
           "too_many_folders_message"]

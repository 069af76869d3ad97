"""The list of downloadable data: files, upstream addresses, checksums, sizes and licences."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridgeeval.errors import BridgeEvalError

_IAPR = "https://raw.githubusercontent.com/gcollell/neural_cross_modal_maps/master/training_data/iaprtc/"
_WIKI = "https://raw.githubusercontent.com/kding1225/RoPH/main/data/"
_WORDSIM = "https://raw.githubusercontent.com/mfaruqui/eval-word-vectors/master/data/word-sim/"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str | None  # None: no published checksum; the file's format is checked instead
    size: int | None


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    base_url: str  # upstream folder; a mirror replaces it by MIRROR/<mirror_dir>/
    mirror_dir: str
    files: tuple[RemoteFile, ...]
    licence: str
    kind: str  # "features", "benchmark", "vectors"
    optional: bool = False  # not verified by us upstream (e.g. the IAPR training split)
    manual: bool = False  # no download: `bridgeeval data add NAME --from DIR`
    meta: dict = field(default_factory=dict)
    # Manual entries without fixed file names: the only names `data add` copies (shell patterns).
    patterns: tuple[str, ...] = ()
    # An entry whose files must match another's widths (the IAPR training split and its test split).
    widths_of: str | None = None


def _wordsim(name: str, file: str, sha: str, size: int, what: str) -> Entry:
    return Entry(
        name, what, _WORDSIM, "wordsim", (RemoteFile(file, sha, size),), "MIT (collection); authors' terms", "benchmark"
    )


ENTRIES: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry(
            "iaprtc",
            "IAPR TC-12 test split, the paper's released features: VGG-128 images, biGRU texts (1,962 pairs)",
            _IAPR,
            "iaprtc",
            (
                RemoteFile(
                    "TS_vis_vgg128.csv", "24a512787e4180d8690dc79c12af4fbb15449813929873f9cb0befbab43d0faa", 1628700
                ),
                RemoteFile(
                    "TS_lang_biGRU.csv", "7147e951f2462cc82e85a2d7fa3b137278767ec5e50d8634db0d367d6218536a", 1209758
                ),
            ),
            "Apache-2.0",
            "features",
        ),
        Entry(
            "iaprtc_train",
            "IAPR TC-12 training split (upstream beside the test files; checksum not verified by us)",
            _IAPR,
            "iaprtc",
            (RemoteFile("TR_vis_vgg128.csv", None, None), RemoteFile("TR_lang_biGRU.csv", None, None)),
            "Apache-2.0",
            "features",
            optional=True,
            widths_of="iaprtc",
        ),
        Entry(
            "wiki",
            "Wikipedia cross-modal set (Rasiwasia et al. 2010): 2,866 pairs, 10 classes, 2,173/693 split",
            _WIKI,
            "wiki",
            (RemoteFile("wiki.mat", "e417067eb501fbb41375b4461469089c9f0332ff9cdaf3b5f6570bbf0078d97c", 3846773),),
            "research data set (no licence stated upstream)",
            "features",
        ),
        Entry(
            "imagenet",
            "The authors' ImageNet concept features (9,251 words; GloVe / word2vec text, VGG-128 / ResNet visual), "
            "CSV rows word,v1,v2,... from http://liir.cs.kuleuven.be/software_pages/cross_modal_acl.php",
            "",
            "imagenet",
            (),
            "the authors' terms",
            "features",
            manual=True,
            patterns=("*glove*.csv", "*word2vec*.csv", "*vgg128*.csv", "*resnet*.csv"),
        ),
        _wordsim(
            "men",
            "EN-MEN-TR-3k.txt",
            "888b13580faa362c7b11da0a670258cf1b1eb4bf0ecbcd418918729a3bd3f43a",
            53593,
            "MEN (3,000 pairs)",
        ),
        _wordsim(
            "simverb",
            "EN-SimVerb-3500.txt",
            "9d84274e7ad029fd3cf69dd0516e9ade624bbef9bd4e2050f6cc1fa01471e0f5",
            65315,
            "SimVerb-3500",
        ),
        _wordsim(
            "rg65", "EN-RG-65.txt", "c243f3a91c3f5d8cf67f21a67f6fb80bde8b6bb060851a6a48e6f2d68ec98c9f", 1210, "RG-65"
        ),
        _wordsim(
            "mc30", "EN-MC-30.txt", "33ee05911496ff83d95cac351d0746c6f63b9181b605cb7d307f4daa8864511b", 543, "MC-30"
        ),
        _wordsim(
            "simlex",
            "EN-SIMLEX-999.txt",
            "405394ffb7d25f6d0e3c041f87c9f27d29dc6b047506769953e85c4523b11685",
            18024,
            "SimLex-999",
        ),
        _wordsim(
            "ws353",
            "EN-WS-353-ALL.txt",
            "ce12919b240af45bdf46d243601eaca2b6212b159b5e7e9b435ee7ee40c5619c",
            7405,
            "WordSim-353 (all)",
        ),
    )
}


def entry(name: str) -> Entry:
    if name not in ENTRIES:
        raise BridgeEvalError(f"unknown data set {name!r}; known: {', '.join(sorted(ENTRIES))}")
    return ENTRIES[name]

"""Text corpora for open KG reasoning: sentences labelled with a (head, tail) entity pair.

The native format is JSON lines, one sentence per line (see ``docs/corpus-format.md``)::

    {"head": "alice_smith_1", "tail": "bob_smith_1", "head_span": [0, 11], "tail_span": [30, 39],
     "text": "Alice Smith is the mother of Bob Smith.", "relation": "mother_of"}

Spans are character offsets into ``text``, end exclusive. :func:`read_corpus` also reads OpenNRE's NYT10 JSON
(``sentence``, ``head: {word, id}``, ``tail: {word, id}``, ``relation``; no positions), finding each entity by
case-insensitive string match. Sentences are grouped into bags by entity pair with :func:`group_bags`; the
word-level tools (:func:`tokenize`, :class:`WordVocabulary`, :func:`load_word2vec_text`) feed the sentence
encoder of :mod:`kgreason.open`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from kgreason.data.vocabulary import Vocabulary
from kgreason.io import atomic_open, read_json, write_json

CorpusFormat = Literal["auto", "jsonl", "nyt10"]
ErrorPolicy = Literal["raise", "skip"]

#: Relation labels that mean "no relation expressed" in NYT10-style corpora; read as ``None``.
NO_RELATION_LABELS = frozenset({"NA", "na", "None", "none", ""})
_NYT10_END = "###END###"


class CorpusFormatError(ValueError):
    """A corpus file could not be read; the message names the file and the line (or NYT10 entry)."""


# ---- tokenizer ----------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def tokenize_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased tokens of ``text`` with their character offsets ``(token, start, end)`` (end exclusive).

    A token is a run of word characters (letters, digits, ``_``) or a single punctuation character, so
    ``"Bob's mom."`` gives ``bob ' s mom .``. Deterministic and locale-independent.
    """
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of ``text`` (see :func:`tokenize_with_offsets`)."""
    return [tok for tok, _, _ in tokenize_with_offsets(text)]


def char_span_to_token_span(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """The tokens ``[i, j)`` of ``text`` that overlap the character span ``[start, end)``.

    Raises ``ValueError`` when the span covers no token (e.g. only whitespace).
    """
    start, end = span
    hits = [i for i, (_, s, e) in enumerate(tokenize_with_offsets(text)) if s < end and e > start]
    if not hits:
        raise ValueError(f"character span {list(span)} covers no token of {text[:80]!r}")
    return hits[0], hits[-1] + 1


def token_span_to_char_span(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """Character span ``[start, end)`` of the tokens ``[i, j)`` of ``text`` (tokens of :func:`tokenize`)."""
    toks = tokenize_with_offsets(text)
    i, j = span
    if not 0 <= i < j <= len(toks):
        raise ValueError(f"token span {list(span)} out of range for a sentence of {len(toks)} tokens")
    return toks[i][1], toks[j - 1][2]


# ---- sentences and corpora ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusSentence:
    """One sentence mentioning a head and a tail entity.

    ``head``/``tail`` are entity labels of the KG vocabulary; ``head_span``/``tail_span`` are character
    offsets of the mentions in ``text`` (end exclusive); ``relation`` is the relation label the sentence
    expresses, or ``None`` when it expresses none (or it is unknown).
    """

    head: str
    tail: str
    text: str
    head_span: tuple[int, int]
    tail_span: tuple[int, int]
    relation: str | None = None

    @property
    def head_mention(self) -> str:
        return self.text[self.head_span[0] : self.head_span[1]]

    @property
    def tail_mention(self) -> str:
        return self.text[self.tail_span[0] : self.tail_span[1]]

    def tokens(self) -> list[str]:
        """``tokenize(self.text)``."""
        return tokenize(self.text)

    def token_spans(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Token spans ``([i, j), [k, l))`` of the head and tail mentions over :meth:`tokens`."""
        return char_span_to_token_span(self.text, self.head_span), char_span_to_token_span(
            self.text, self.tail_span
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines record of this sentence."""
        return {
            "head": self.head,
            "tail": self.tail,
            "head_span": list(self.head_span),
            "tail_span": list(self.tail_span),
            "text": self.text,
            "relation": self.relation,
        }


@dataclass
class Corpus:
    """Sentences read from a corpus file, with counts of what was skipped.

    ``entities`` is the vocabulary the corpus was read against (``None`` if read without one);
    ``num_skipped_unknown`` counts sentences whose head or tail is not in it, ``unknown_entities`` the
    distinct labels involved; ``num_skipped_malformed`` counts bad records skipped with ``errors="skip"``.
    """

    sentences: list[CorpusSentence]
    path: Path | None = None
    entities: Vocabulary | None = None
    num_skipped_unknown: int = 0
    unknown_entities: set[str] = field(default_factory=set)
    num_skipped_malformed: int = 0

    def __len__(self) -> int:
        return len(self.sentences)

    def __iter__(self) -> Iterator[CorpusSentence]:
        return iter(self.sentences)

    def __getitem__(self, i: int) -> CorpusSentence:
        return self.sentences[i]

    def relations(self) -> list[str]:
        """Sorted distinct relation labels expressed by the sentences (``None`` excluded)."""
        return sorted({s.relation for s in self.sentences if s.relation is not None})

    def summary(self) -> str:
        where = f"{self.path}: " if self.path else ""
        parts = [f"{where}{len(self)} sentences"]
        if self.num_skipped_unknown:
            parts.append(
                f"{self.num_skipped_unknown} skipped for {len(self.unknown_entities)} entities not in the KG"
            )
        if self.num_skipped_malformed:
            parts.append(f"{self.num_skipped_malformed} malformed skipped")
        return ", ".join(parts)


# ---- writing ------------------------------------------------------------------------------------------------


def write_corpus_jsonl(sentences: Iterable[CorpusSentence], path: str | os.PathLike[str]) -> int:
    """Write ``sentences`` as JSON lines to ``path`` atomically; returns the number written."""
    n = 0
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for s in sentences:
            fh.write(json.dumps(s.to_json(), ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


# ---- reading ------------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusFormatError(f"{path}: corpus file not found") from None
    except OSError as exc:
        raise CorpusFormatError(f"{path}: cannot read corpus file ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise CorpusFormatError(f"{path}, line {line_no}: not valid UTF-8 (offset {exc.start})") from None


def _detect_format(path: Path, text: str) -> Literal["jsonl", "nyt10"]:
    stripped = text.lstrip()
    if not stripped:
        return "jsonl"
    if stripped[0] == "[":
        return "nyt10"
    line_no = text[: len(text) - len(stripped)].count("\n") + 1
    first = stripped.split("\n", 1)[0].strip()
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        raise CorpusFormatError(
            f"{path}, line {line_no}: cannot detect the corpus format (expected JSON lines or a NYT10 JSON "
            "list): the first record is not valid JSON"
        ) from None
    if isinstance(obj, dict) and "sentence" in obj and "text" not in obj:
        return "nyt10"
    return "jsonl"


def _span(value: Any, where: str, name: str) -> tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    ):
        raise CorpusFormatError(f"{where}: {name} must be a list of two integers [start, end], got {value!r}")
    return int(value[0]), int(value[1])


def _check_char_span(span: tuple[int, int], text: str, where: str, name: str) -> None:
    start, end = span
    if not 0 <= start < end <= len(text):
        raise CorpusFormatError(
            f"{where}: {name} {list(span)} out of range for a text of {len(text)} characters "
            "(need 0 <= start < end <= len(text), end exclusive)"
        )
    if not text[start:end].strip():
        raise CorpusFormatError(f"{where}: {name} {list(span)} covers only whitespace")


def _parse_jsonl_record(obj: Any, where: str) -> CorpusSentence:
    if not isinstance(obj, dict):
        raise CorpusFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("head", "tail", "text") if k not in obj]
    if missing:
        raise CorpusFormatError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")
    head, tail, text, relation = obj["head"], obj["tail"], obj["text"], obj.get("relation")
    for key, value in (("head", head), ("tail", tail), ("text", text)):
        if not isinstance(value, str) or not value:
            raise CorpusFormatError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    if relation is not None and not isinstance(relation, str):
        raise CorpusFormatError(f"{where}: 'relation' must be a string or null, got {relation!r}")
    spans: dict[str, tuple[int, int]] = {}
    for side in ("head", "tail"):
        char_key, tok_key = f"{side}_span", f"{side}_token_span"
        if char_key in obj:
            span = _span(obj[char_key], where, char_key)
            _check_char_span(span, text, where, char_key)
        elif tok_key in obj:
            tok_span = _span(obj[tok_key], where, tok_key)
            try:
                span = token_span_to_char_span(text, tok_span)
            except ValueError as exc:
                raise CorpusFormatError(f"{where}: {tok_key}: {exc}") from None
        else:
            raise CorpusFormatError(f"{where}: missing key {char_key!r} (or {tok_key!r})")
        word = obj.get(f"{side}_word")
        if word is not None and text[span[0] : span[1]] != word:
            raise CorpusFormatError(
                f"{where}: {side} span {list(span)} covers {text[span[0] : span[1]]!r}, "
                f"which does not match {side}_word {word!r}"
            )
        spans[side] = span
    (hs, he), (ts, te) = spans["head"], spans["tail"]
    if hs < te and ts < he:
        raise CorpusFormatError(f"{where}: head_span {[hs, he]} and tail_span {[ts, te]} overlap")
    return CorpusSentence(head, tail, text, spans["head"], spans["tail"], relation)


def _find_mention(sentence: str, word: str) -> tuple[int, int] | None:
    """Case-insensitive match of ``word`` (``_`` also matching a space) at token boundaries; first hit wins."""
    variants = [word]
    if "_" in word:
        variants.append(word.replace("_", " "))
    elif " " in word:
        variants.append(word.replace(" ", "_"))
    for variant in variants:
        pattern = re.compile(r"(?<!\w)" + re.escape(variant) + r"(?!\w)", re.IGNORECASE)
        m = pattern.search(sentence)
        if m:
            return m.start(), m.end()
    return None


def _nyt10_entity(obj: Any, key: str, where: str) -> tuple[str, str]:
    ent = obj.get(key)
    if not isinstance(ent, dict) or not isinstance(ent.get("word"), str) or not ent["word"]:
        raise CorpusFormatError(f"{where}: {key!r} must be an object with a non-empty 'word', got {ent!r}")
    ent_id = ent.get("id")
    return ent["word"], str(ent_id) if ent_id not in (None, "") else ""


def _nyt10_label(word: str, ent_id: str, entities: Vocabulary | None) -> str:
    """The KG label of a NYT10 entity: its ``id``, else its ``word`` (spaces joined by ``_``), first found."""
    candidates = [c for c in (ent_id, word, word.replace(" ", "_")) if c]
    candidates += [c.lower() for c in candidates]
    if entities is not None:
        for c in candidates:
            if c in entities:
                return c
    return candidates[0]


def _parse_nyt10_record(obj: Any, where: str, entities: Vocabulary | None) -> CorpusSentence:
    if not isinstance(obj, dict):
        raise CorpusFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("sentence", "head", "tail") if k not in obj]
    if missing:
        raise CorpusFormatError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")
    sentence = obj["sentence"]
    if not isinstance(sentence, str) or not sentence.strip():
        raise CorpusFormatError(f"{where}: 'sentence' must be a non-empty string")
    sentence = sentence.strip()
    if sentence.endswith(_NYT10_END):
        sentence = sentence[: -len(_NYT10_END)].rstrip()
    relation = obj.get("relation")
    if relation is not None and not isinstance(relation, str):
        raise CorpusFormatError(f"{where}: 'relation' must be a string or null, got {relation!r}")
    if relation in NO_RELATION_LABELS:
        relation = None
    (hw, hid), (tw, tid) = _nyt10_entity(obj, "head", where), _nyt10_entity(obj, "tail", where)
    spans = []
    for side, word in (("head", hw), ("tail", tw)):
        span = _find_mention(sentence, word)
        if span is None:
            raise CorpusFormatError(
                f"{where}: {side} word {word!r} not found in the sentence {sentence[:100]!r}"
            )
        spans.append(span)
    if spans[0] == spans[1] or (spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]):
        # Both names match the same text (e.g. one is part of the other): look for the tail after the head.
        alt = _find_mention(sentence[spans[0][1] :], tw)
        if alt is None:
            raise CorpusFormatError(
                f"{where}: head {hw!r} and tail {tw!r} match the same text of the sentence"
            )
        spans[1] = (alt[0] + spans[0][1], alt[1] + spans[0][1])
    return CorpusSentence(
        _nyt10_label(hw, hid, entities),
        _nyt10_label(tw, tid, entities),
        sentence,
        spans[0],
        spans[1],
        relation,
    )


def read_corpus(
    path: str | os.PathLike[str],
    entities: Vocabulary | None = None,
    format: CorpusFormat = "auto",
    errors: ErrorPolicy = "raise",
) -> Corpus:
    """Read a corpus file into a :class:`Corpus`.

    ``format``: ``"jsonl"`` (the kgreason format, see ``docs/corpus-format.md``), ``"nyt10"`` (OpenNRE's
    JSON list — or JSON lines — of ``{sentence, head: {word, id}, tail: {word, id}, relation}``; mentions
    are found by case-insensitive match, ``_`` in a name also matching a space; a trailing ``###END###`` is
    removed; relation ``"NA"`` reads as ``None``) or ``"auto"`` (a file starting with ``[`` or whose first
    record has ``sentence`` but no ``text`` is NYT10). With ``entities``, sentences whose head or tail is
    not in the vocabulary are skipped and counted (NYT10 entities are looked up by ``id``, then ``word``).

    Bad records (invalid JSON, missing keys, spans out of range, overlapping, or not matching
    ``head_word``/``tail_word``) raise :class:`CorpusFormatError` naming the file and line (NYT10 list:
    the entry index), or are skipped and counted with ``errors="skip"``. Blank lines are ignored.
    """
    if format not in ("auto", "jsonl", "nyt10"):
        raise ValueError(f"format must be 'auto', 'jsonl' or 'nyt10', got {format!r}")
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    path = Path(path)
    text = _read_text(path)
    fmt = _detect_format(path, text) if format == "auto" else format

    records: list[tuple[str, Any]] = []  # (where, parsed JSON or a CorpusFormatError)
    if fmt == "nyt10" and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from None
        records = [(f"{path}, entry {i}", obj) for i, obj in enumerate(data)]
    else:
        for line_no, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            where = f"{path}, line {line_no}"
            try:
                records.append((where, json.loads(line)))
            except json.JSONDecodeError as exc:
                records.append(
                    (where, CorpusFormatError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})"))
                )

    corpus = Corpus([], path=path, entities=entities)
    for where, obj in records:
        try:
            if isinstance(obj, CorpusFormatError):
                raise obj
            sent = (
                _parse_nyt10_record(obj, where, entities)
                if fmt == "nyt10"
                else _parse_jsonl_record(obj, where)
            )
        except CorpusFormatError:
            if errors == "raise":
                raise
            corpus.num_skipped_malformed += 1
            continue
        if entities is not None:
            unknown = [x for x in (sent.head, sent.tail) if x not in entities]
            if unknown:
                corpus.num_skipped_unknown += 1
                corpus.unknown_entities.update(unknown)
                continue
        corpus.sentences.append(sent)
    return corpus


# ---- bags ---------------------------------------------------------------------------------------------------


def group_bags(
    corpus: Corpus | Sequence[CorpusSentence],
    entities: Vocabulary | None = None,
) -> dict[tuple[int, int], list[int]]:
    """Sentence bags: ``(head_id, tail_id) -> indices of the sentences`` mentioning that ordered pair.

    Ids come from ``entities`` (default: the vocabulary ``corpus`` was read with). Keys are sorted, each
    bag lists sentence indices in corpus order. Raises ``ValueError`` without a vocabulary and
    :class:`~kgreason.data.UnknownLabelError` for a label not in it.
    """
    vocab = entities if entities is not None else getattr(corpus, "entities", None)
    if vocab is None:
        raise ValueError("group_bags needs an entity vocabulary: pass entities= or read the corpus with one")
    sentences = corpus.sentences if isinstance(corpus, Corpus) else corpus
    bags: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(sentences):
        bags.setdefault((vocab.id(s.head), vocab.id(s.tail)), []).append(i)
    return dict(sorted(bags.items()))


# ---- words --------------------------------------------------------------------------------------------------


class WordVocabulary:
    """Word <-> id map for the sentence encoder: ``PAD = 0`` (``"<pad>"``), ``UNK = 1`` (``"<unk>"``).

    Built from tokenized text by :meth:`build`: words seen at least ``min_count`` times, most frequent first
    (ties alphabetical), so the same corpus always gives the same ids.
    """

    PAD = 0
    UNK = 1
    PAD_TOKEN = "<pad>"
    UNK_TOKEN = "<unk>"

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if words[:2] != [self.PAD_TOKEN, self.UNK_TOKEN]:
            raise ValueError(f"a word vocabulary starts with {self.PAD_TOKEN!r}, {self.UNK_TOKEN!r}")
        self._words = words
        self._index = {w: i for i, w in enumerate(words)}
        if len(self._index) != len(words):
            raise ValueError("duplicate words in the word vocabulary")

    @classmethod
    def build(
        cls,
        texts: Corpus | Iterable[CorpusSentence | str],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> WordVocabulary:
        """Vocabulary of the tokens of ``texts`` (sentences or strings) occurring ``>= min_count`` times.

        ``max_size`` caps the size including PAD and UNK.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts: Counter[str] = Counter()
        for item in texts:
            counts.update(tokenize(item if isinstance(item, str) else item.text))
        for special in (cls.PAD_TOKEN, cls.UNK_TOKEN):
            counts.pop(special, None)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - 2)]
        return cls([cls.PAD_TOKEN, cls.UNK_TOKEN, *words])

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordVocabulary) and self._words == other._words

    def __repr__(self) -> str:
        return f"WordVocabulary(size={len(self)})"

    @property
    def words(self) -> list[str]:
        return list(self._words)

    def id(self, word: str) -> int:
        """Id of ``word``; unknown words map to :attr:`UNK`."""
        return self._index.get(word, self.UNK)

    def word(self, i: int) -> str:
        return self._words[int(i)]

    def encode(self, tokens: Sequence[str], max_length: int | None = None) -> list[int]:
        """Ids of ``tokens`` (cut to ``max_length`` when given)."""
        ids = [self._index.get(t, self.UNK) for t in tokens]
        return ids[:max_length] if max_length is not None else ids

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the words as a JSON list (position = id), atomically."""
        write_json(path, self._words)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WordVocabulary:
        words = read_json(path)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{path}: a word vocabulary file must hold a JSON list of strings")
        try:
            return cls(words)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def load_word2vec_text(
    path: str | os.PathLike[str],
    vocab: WordVocabulary,
    seed: int = 0,
) -> torch.Tensor:
    """Embedding matrix ``FloatTensor[len(vocab), dim]`` from a word2vec *text* file.

    The file holds an optional header ``"<count> <dim>"`` and then one ``word v_1 ... v_dim`` per line. A
    word of ``vocab`` takes the vector of its exact match, else of its lower-cased match. Rows of words not
    in the file are drawn from ``N(0, std of the loaded vectors)`` with a generator seeded by ``seed``; the
    PAD row is zero. Raises ``ValueError`` naming the file and line for a binary file, a bad header, a line
    of the wrong width or a non-number, and when no word of ``vocab`` is in the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: word vector file not found") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(
            f"{path}: not UTF-8 text; binary word2vec files are not supported (convert to the text format)"
        ) from None
    lines = text.split("\n")
    dim: int | None = None
    start = 0
    first = lines[0].split() if lines else []
    if len(first) == 2 and all(x.isdigit() for x in first):
        dim, start = int(first[1]), 1
        if dim <= 0:
            raise ValueError(f"{path}, line 1: header dimension must be positive, got {dim}")
    found: dict[str, list[float]] = {}
    lower_found: dict[str, list[float]] = {}
    for line_no in range(start, len(lines)):
        parts = lines[line_no].rstrip().split(" ")
        if not parts or parts == [""]:
            continue
        word, values = parts[0], parts[1:]
        if dim is None:
            dim = len(values)
            if dim == 0:
                raise ValueError(f"{path}, line {line_no + 1}: word {word!r} has no vector values")
        if len(values) != dim:
            raise ValueError(
                f"{path}, line {line_no + 1}: expected {dim} values for word {word!r}, found {len(values)}"
            )
        wanted, wanted_lower = word in vocab, word.lower() in vocab and word.lower() not in lower_found
        if not (wanted or wanted_lower):
            continue
        try:
            vec = [float(v) for v in values]
        except ValueError:
            raise ValueError(
                f"{path}, line {line_no + 1}: non-numeric vector value for word {word!r}"
            ) from None
        if not all(math.isfinite(v) for v in vec):
            raise ValueError(f"{path}, line {line_no + 1}: non-finite vector value for word {word!r}")
        if wanted:
            found[word] = vec
        if wanted_lower:
            lower_found[word.lower()] = vec
    if dim is None:
        raise ValueError(f"{path}: no word vectors in the file")
    rows: dict[int, list[float]] = {}
    for i, w in enumerate(vocab.words):
        if i == WordVocabulary.PAD:
            continue
        if w in found:
            rows[i] = found[w]
        elif w in lower_found:
            rows[i] = lower_found[w]
    if not rows:
        raise ValueError(
            f"{path}: none of the {len(vocab)} vocabulary words has a vector in this file "
            "(wrong file, or a casing/tokenization mismatch?)"
        )
    loaded = torch.tensor(list(rows.values()), dtype=torch.float32)
    std = float(loaded.std()) if loaded.numel() > 1 else 1.0
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(len(vocab), dim, generator=gen) * (std if std > 0 else 1.0)
    out[list(rows)] = loaded
    out[WordVocabulary.PAD] = 0.0
    return out

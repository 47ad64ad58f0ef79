"""Tests for knowledge_clip.data.conceptnet on fixtures in the exact ConceptNet 5.7 assertions shape."""

import gzip
import json
import os

import numpy as np
import pyarrow as pa
import pytest
from graph_utils import assert_same_graph

from knowledge_clip.data import conceptnet
from knowledge_clip.data.conceptnet import load_conceptnet, relation_text, uri_to_label
from knowledge_clip.errors import EmptyGraphError, TruncatedFileError
from knowledge_clip.graph import EntityView, ViewKind


def assertion(relation: str, start: str, end: str, weight=1.0, surface: str | None = None, **extra) -> str:
    """One line as written by conceptnet5 `msgpack_to_tab_separated` (JSON with sort_keys, ensure_ascii=False)."""
    metadata = {
        "dataset": "/d/conceptnet/4/en",
        "license": "cc:by/4.0",
        "sources": [{"activity": "/s/activity/omcs/omcs1_possibly_free_text", "contributor": "/s/contributor/omcs/x"}],
        **extra,
    }
    if weight is not None:
        metadata["weight"] = weight
    if surface:
        metadata["surfaceText"] = surface
    uri = f"/a/[{relation}/,{start}/,{end}/]"
    return "\t".join([uri, relation, start, end, json.dumps(metadata, ensure_ascii=False, sort_keys=True)])


def write(path, lines, compress=False):
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


VALID = [
    assertion("/r/IsA", "/c/en/ice_cream/n", "/c/en/dessert/n", 2.0, "[[ice cream]] is [[a dessert]]"),
    assertion("/r/AtLocation", "/c/en/cat", "/c/en/house/n/wn/artifact", 1.0),
    assertion("/r/dbpedia/genre", "/c/en/miles_davis", "/c/en/jazz", 0.5),
    assertion("/r/HasA", "/c/en/dog", "/c/en/tail", 4.0),
]


def test_valid_rows_become_triplets_with_labels_and_relation_texts(tmp_path):
    graph = load_conceptnet(write(tmp_path / "assertions.csv", VALID))
    assert graph.num_triplets == len(VALID)
    keys = {graph.entity_key(i): graph.entity_views(i) for i in range(graph.num_entities)}
    assert keys["/c/en/ice_cream"] == [EntityView(ViewKind.TEXT, text="ice cream")]
    assert keys["/c/en/house"] == [EntityView(ViewKind.TEXT, text="house")]
    assert keys["/c/en/miles_davis"] == [EntityView(ViewKind.TEXT, text="miles davis")]
    triplets = {
        (graph.entity_key(h), graph.relations[r], graph.entity_key(t))
        for h, r, t in zip(graph.heads, graph.relation_ids, graph.tails)
    }
    assert triplets == {
        ("/c/en/ice_cream", "is a", "/c/en/dessert"),
        ("/c/en/cat", "at location", "/c/en/house"),
        ("/c/en/miles_davis", "genre", "/c/en/jazz"),
        ("/c/en/dog", "has a", "/c/en/tail"),
    }
    report = graph.report
    assert (report.records_read, report.triplets_loaded, report.skipped) == (4, 4, {})


def test_relation_and_label_rules():
    assert relation_text("/r/IsA") == "is a"
    assert relation_text("/r/EtymologicallyRelatedTo") == "etymologically related to"
    assert relation_text("/r/dbpedia/influencedBy") == "influenced by"
    assert relation_text("/r/ExternalURL") == "external url"
    assert uri_to_label("/c/en/ice_cream/n/wn/food") == "ice cream"
    with pytest.raises(ValueError):
        uri_to_label("http://example.org")


def test_every_bad_row_is_counted_once_and_located(tmp_path):
    lines = VALID + [
        assertion("/r/ExternalURL", "/c/en/cat", "http://en.wiktionary.org/wiki/cat"),  # 5
        assertion("/r/IsA", "/c/enm/cat", "/c/en/animal"),  # 6: Middle English start
        assertion("/r/IsA", "/c/en/cat", "/c/enm/beest"),  # 7: Middle English end
        assertion("/r/Synonym", "/c/fr/glace/n", "/c/en/ice_cream/n"),  # 8
        assertion("/r/FormOf", "/x/en/un", "/c/en/undo"),  # 9: sub-word term
        "/a/[/r/IsA/,/c/en/a/,/c/en/b/]\t/r/IsA\t/c/en/a",  # 10: 3 columns
        "",  # 11: empty line
        VALID[0].replace('"weight": 2.0}', '"weight": 2.0'),  # 12: invalid JSON
        assertion("/r/IsA", "/c/en/bird", "/c/en/animal", weight=None),  # 13: no weight
        assertion("/r/IsA", "/c/en/fish", "/c/en/animal", weight="high"),  # 14: non-numeric weight
        VALID[1] + "\textra",  # 15: 6 columns
        assertion("/r/IsA", "/c/en/cat/n", "/c/en/dessert") + "",  # 16: fine
        assertion("/r/IsA", "/c/en/ice_cream", "/c/en/dessert"),  # 17: duplicate of line 1 once collapsed
        assertion("/r/IsA", "/c/en/cat/n", "/c/en/cat/v"),  # 18: self-loop once collapsed
        assertion("/r/RelatedTo", "/c/de/a", "/c/de/b").replace('"weight": 1.0}', '"weight": }'),  # 19: filtered
    ]
    graph = load_conceptnet(write(tmp_path / "assertions.csv", lines))
    report = graph.report
    assert report.skipped == {
        "ExternalURL": 1,
        "language": 4,
        "non-concept end": 1,
        "wrong column count": 3,
        "bad json": 1,
        "missing or non-numeric weight": 2,
        "duplicate triplet": 1,
        "self-loop": 1,
    }
    assert report.records_read == len(lines) == report.triplets_loaded + report.total_skipped
    assert graph.num_triplets == 5  # the 4 valid rows and line 16: the count of valid records
    source = str(tmp_path / "assertions.csv")
    assert report.examples["bad json"] == [
        f"{source}:12: json: " + report.examples["bad json"][0].split(": json: ")[1]
    ]
    assert {example.split(": ")[0] for example in report.examples["wrong column count"]} == {
        f"{source}:10",
        f"{source}:11",
        f"{source}:15",
    }
    assert report.examples["missing or non-numeric weight"][1].startswith(f"{source}:14: weight: weight is 'high'")
    assert [example.split(": ")[0] for example in report.examples["language"]] == [
        f"{source}:{line}" for line in (6, 7, 8, 19)
    ]
    assert "/c/enm/beest" in report.examples["language"][1] and ": end: " in report.examples["language"][1]


def test_lines_end_at_newline_only(tmp_path):
    """Control bytes other than tab and newline are field content, and CRLF line ends leave the rows intact."""
    lines = [
        VALID[0].replace("/a/[", "/a/\x00[", 1),  # a NUL byte in the assertion URI, which is not validated
        assertion("/r/IsA", "/c/en/bell\x07", "/c/en/sound"),  # a control byte in a concept: part of its key
        VALID[1] + "\r",  # CRLF: the carriage return ends the JSON column as whitespace
        VALID[2].replace('"dataset"', '"data\rset"'),  # a raw CR inside a JSON string: invalid JSON, one row
    ]
    graph = load_conceptnet(write(tmp_path / "assertions.csv", lines))
    report = graph.report
    assert (report.records_read, report.triplets_loaded, report.skipped) == (4, 3, {"bad json": 1})
    assert report.examples["bad json"][0].startswith(f"{tmp_path / 'assertions.csv'}:4: json: ")
    assert "/c/en/bell\x07" in {graph.entity_key(i) for i in range(graph.num_entities)}


def test_min_weight_and_relations_filters(tmp_path):
    path = write(tmp_path / "assertions.csv", VALID)
    heavy = load_conceptnet(path, min_weight=1.5)
    assert heavy.num_triplets == 2 and heavy.report.skipped == {"weight below min_weight": 2}
    assert "0.5 < min_weight 1.5" in heavy.report.examples["weight below min_weight"][1]
    chosen = load_conceptnet(path, relations=["IsA", "/r/dbpedia/genre"])
    assert sorted(chosen.relations) == ["genre", "is a"]
    assert chosen.report.skipped == {"relation not selected": 2}
    for bad in ([], ["is a"]):
        with pytest.raises(ValueError):
            load_conceptnet(path, relations=bad)


def test_languages_and_sense_collapsing(tmp_path):
    lines = [
        assertion("/r/Synonym", "/c/fr/glace/n", "/c/en/ice_cream/n"),
        assertion("/r/IsA", "/c/en/cat/n", "/c/en/animal"),
        assertion("/r/IsA", "/c/en/cat", "/c/en/animal"),
    ]
    path = write(tmp_path / "assertions.csv", lines)
    assert load_conceptnet(path, languages=("en", "fr")).num_triplets == 2
    assert load_conceptnet(path, languages=None).num_triplets == 2
    separate = load_conceptnet(path, collapse_senses=False)
    assert separate.num_triplets == 2
    assert {separate.entity_key(i) for i in range(separate.num_entities)} == {
        "/c/en/cat/n",
        "/c/en/cat",
        "/c/en/animal",
    }
    assert separate.entity_views(0)[0].text == "cat"


def test_gzip_is_read_like_plain_text(tmp_path):
    plain = load_conceptnet(write(tmp_path / "a.csv", VALID))
    compressed = load_conceptnet(write(tmp_path / "a.csv.gz", VALID, compress=True))
    np.testing.assert_array_equal(plain.heads, compressed.heads)
    assert plain.report.skipped == compressed.report.skipped


def _many_lines(count: int) -> list[str]:
    return [
        assertion("/r/RelatedTo", f"/c/en/word_{i}", f"/c/en/other_{i % 97}", surface="x" * 200) for i in range(count)
    ]


def test_truncated_gzip_names_file_and_line(tmp_path, monkeypatch):
    from knowledge_clip.data import conceptnet

    monkeypatch.setattr(conceptnet, "_CHUNK_BYTES", 1 << 20)  # about 29 MB of text: many chunks are merged before
    lines = _many_lines(60_000)
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "conceptnet-assertions-5.7.0.csv.gz"
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(TruncatedFileError) as error:
        load_conceptnet(path)
    assert error.value.file == str(path) and 0 < error.value.line < 60_000
    assert str(error.value).startswith(f"{path}:{error.value.line}: ")
    assert "truncated" in str(error.value)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    data = bytearray(gzip.compress(("\n".join(VALID) + "\n").encode()))
    data[20:40] = b"\xff" * 20
    path = tmp_path / "corrupt.csv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(TruncatedFileError, match="corrupt.csv.gz"):
        load_conceptnet(path)


def test_line_numbers_stay_exact_across_chunks_and_malformed_rows(tmp_path, monkeypatch):
    from knowledge_clip.data import conceptnet

    monkeypatch.setattr(conceptnet, "_CHUNK_BYTES", 1 << 20)  # 19 MB of text: the rows below lie in 3 chunks
    lines = _many_lines(40_000)
    lines[10] = "only\ttwo"
    lines[35_000] = lines[35_000].replace('"weight": 1.0}', '"weight": 1.0,}')
    lines[39_998] = lines[39_998].replace("\t/c/en/word_", "\t/c/en/\udcff", 1)  # start: invalid UTF-8
    path = tmp_path / "big.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))
    graph = load_conceptnet(path)
    report = graph.report
    assert report.examples["wrong column count"][0].startswith(f"{path}:11: ")
    assert report.examples["bad json"][0].startswith(f"{path}:35001: json: invalid JSON")
    assert report.examples["bad concept uri"][0].startswith(f"{path}:39999: ")
    assert graph.num_triplets == 40_000 - 3
    assert report.records_read == 40_000 == report.triplets_loaded + report.total_skipped


@pytest.mark.parametrize("compress", [False, True], ids=["csv", "csv.gz"])
def test_chunking_changes_nothing(tmp_path, monkeypatch, compress):
    """Chunks far smaller than the file (and than its longest line) give the same graph, report and line numbers
    as one chunk holding everything: ids in order of first appearance, skips located in file order."""
    from knowledge_clip.data import conceptnet

    lines = _many_lines(300)
    lines[3] = "only\ttwo"  # wrong column count in the first chunk
    lines[150] = assertion("/r/IsA", "/c/en/long", "/c/en/line", surface="y" * 5000)  # longer than a chunk
    lines[151] = ""
    lines[200] = assertion("/r/IsA", "/c/fr/chat", "/c/en/cat")
    lines[250] = lines[250].replace('"weight": 1.0}', '"weight": 1.0')  # invalid JSON
    lines[299] = assertion("/r/IsA", "/c/en/last", "/c/en/line")  # written without a final newline
    data = "\n".join(lines).encode()
    path = tmp_path / ("assertions.csv.gz" if compress else "assertions.csv")
    path.write_bytes(gzip.compress(data) if compress else data)

    def load():
        graph = load_conceptnet(path)
        keys = [graph.entity_key(i) for i in range(graph.num_entities)]
        return keys, graph.heads.tolist(), graph.relation_ids.tolist(), graph.tails.tolist(), graph.report.to_dict()

    whole = load()
    for chunk_bytes in (1000, 4099):
        monkeypatch.setattr(conceptnet, "_CHUNK_BYTES", chunk_bytes)
        assert load() == whole, chunk_bytes
    report = whole[-1]
    assert report["records_read"] == 300 and report["triplets_loaded"] == 300 - 4
    assert [example.split(": ")[0] for example in report["examples"]["wrong column count"]] == [
        f"{path}:4",
        f"{path}:152",
    ]
    assert report["examples"]["bad json"][0].startswith(f"{path}:251: json: ")
    assert report["examples"]["language"][0].startswith(f"{path}:201: start: ")
    assert "/c/en/last" in whole[0] and "/c/en/long" in whole[0]


def test_nothing_kept_is_an_error_naming_the_file(tmp_path):
    path = write(tmp_path / "french.csv", [assertion("/r/IsA", "/c/fr/chat", "/c/fr/animal")])
    with pytest.raises(EmptyGraphError, match="french.csv") as error:
        load_conceptnet(path)
    assert "language: 1" in str(error.value)
    with pytest.raises(ValueError):
        load_conceptnet(path, languages=("en/x",))


def test_malformed_concepts_and_relations_are_counted_once(tmp_path):
    lines = VALID + [
        assertion("/r/IsA", "/c//cat", "/c/en/animal"),  # 5: empty language
        assertion("/r/IsA", "/c/en/", "/c/en/animal"),  # 6: empty text
        assertion("/r/IsA", "/c/en/cat", "/c/en//n"),  # 7: empty text before the sense
        assertion("/r/", "/c/en/cat", "/c/en/animal"),  # 8: empty relation name
        assertion("/r/", "/c/en/dog", "/c/en/animal", weight=None),  # 9: no weight (counted for that only)
        assertion("/r/IsA", "/c/en/cat/n/wn/animal", "/c/fr/chat_noir/n"),  # 10: kept (any language)
    ]
    graph = load_conceptnet(write(tmp_path / "assertions.csv", lines), languages=None)
    report = graph.report
    assert report.skipped == {"bad concept uri": 3, "bad relation uri": 1, "missing or non-numeric weight": 1}
    assert [example.split(": ")[0] for example in report.examples["bad concept uri"]] == [
        f"{tmp_path / 'assertions.csv'}:{line}" for line in (5, 6, 7)
    ]
    assert report.examples["bad relation uri"][0].startswith(f"{tmp_path / 'assertions.csv'}:8: rel: ")
    assert report.records_read == len(lines) == report.triplets_loaded + report.total_skipped
    keys = {graph.entity_key(i): graph.entity_views(i)[0].text for i in range(graph.num_entities)}
    assert keys["/c/fr/chat_noir"] == "chat noir" and keys["/c/en/cat"] == "cat"


def _reference_reason(line: bytes, prefixes: tuple[bytes, ...] | None) -> str | None:
    """Rules 1-4 of the loader written plainly: why `line` is dropped, or None."""
    fields = line.split(b"\t")
    if len(fields) != 5:
        return "wrong column count"
    relation, start, end = fields[1:4]
    if relation == b"/r/ExternalURL":
        return "ExternalURL"
    if not (start.startswith(b"/c/") and end.startswith(b"/c/")):
        return "non-concept end"
    if prefixes is not None and not (start.startswith(prefixes) and end.startswith(prefixes)):
        return "language"
    return None


def _reference_text_segment(uri: bytes) -> bytes:
    """The text segment of a concept URI, b"" when it has no language or no text."""
    parts = uri.split(b"/")
    return parts[3] if len(parts) > 3 and parts[2] else b""


@pytest.mark.parametrize("languages", [None, ("en",), ("en", "roa-opt-xyz")], ids=["all", "en", "long-code"])
def test_compiled_byte_rules_match_a_python_reference(languages):
    """`parse_chunk` against rules 1-4 written plainly, on random lines with short, empty and odd fields, control
    bytes and non-ASCII bytes, at every alignment of the chunk, with and without a final newline."""
    from knowledge_clip.data import _conceptnet_kernels as kernels
    from knowledge_clip.data.conceptnet import _ChunkLines, _ChunkParser

    prefixes = None if languages is None else tuple(f"/c/{code}/".encode() for code in languages)
    parser = _ChunkParser(None if prefixes is None else tuple(p.decode() for p in prefixes), None, None, True, 5)
    pool = [b"", b"/", b"/c", b"/c/", b"/c/en", b"/c/en/", b"/c/enm/beest", b"/c/en/ice_cream/n/wn/food", b"/c//x"]
    pool += [b"/c/en//n", b"/c/roa-opt-xyz/w", b"/c/roa-opt-xy/w", b"/c/fr/chat", b"/x/en/un", b"http://x/y"]
    pool += [b"/r/ExternalURL", b"/r/ExternalURLs", b"/r/IsA", b"/c/en/bell\x07", b"/c/en/caf\xc3\xa9", b"a\rb"]
    pool += [b'{"weight": 1.5}', b'{"weight": "x"}', b"{}", b"[1]", b'{"weight": 2', b"x" * 20]
    rng = np.random.default_rng(0)
    for trial in range(40):
        lines = []
        for _ in range(int(rng.integers(1, 60))):
            columns = int(rng.choice([1, 3, 4, 5, 5, 5, 5, 6]))
            lines.append(b"\t".join(pool[i] for i in rng.integers(0, len(pool), size=columns)))
        text = b"\n".join(lines) + (b"\n" if trial % 2 else b"")
        offset = trial % 8  # the chunk's alignment in memory
        chunk = pa.py_buffer(b" " * offset + text).slice(offset)
        parsed = _ChunkLines(chunk, parser.patterns)
        names = {reason: name for reason, name, _ in parser.byte_rules}
        assert parsed.num_lines == len(lines)
        reasons = [names.get(int(reason)) for reason in parsed.reasons]
        assert reasons == [_reference_reason(line, prefixes) for line in lines]
        kept = [index for index, line in enumerate(lines) if _reference_reason(line, prefixes) is None]
        assert parsed.candidates[:, kernels.LINE].tolist() == kept
        for candidate, index in zip(parsed.candidates, kept):
            fields = lines[index].split(b"\t")
            line_begin = parsed.line_ends[index - 1] + 1 if index else 0
            tabs = (line_begin + np.cumsum([len(field) + 1 for field in fields[:4]]) - 1).tolist()
            assert candidate[kernels.TABS].tolist() == tabs
            for uri, (text_begin, text_end) in zip(fields[2:4], (candidate[5:7], candidate[7:9])):
                assert text[text_begin:text_end] == _reference_text_segment(uri)


def test_compiled_json_reader_agrees_with_python_json():
    """The compiled reader of the JSON column never accepts what `json.loads` rejects, and finds the same weight,
    on valid columns and on random corruptions of them; what it does not accept goes to `json`."""
    from knowledge_clip.data import _conceptnet_kernels as kernels
    from knowledge_clip.data.conceptnet import _python_json_weight

    def compare(text: bytes) -> int:
        data = np.frombuffer(text, dtype=np.uint8)
        words = np.ndarray((max(data.size - 7, 0),), dtype="<u8", buffer=data, strides=(1,))
        status, weight = kernels._json_weight(data, words, 0, data.size)
        if status == kernels.JSON_READ:
            expected, problem = _python_json_weight(text)
            assert problem is None, text
            assert (np.isnan(weight) and np.isnan(expected)) or weight == expected, text
        return status

    columns = [
        json.dumps(json.loads(VALID[0].split("\t")[4])).encode(),
        json.dumps(
            {"a": "caf\u00e9 \u2603 \U0001f600", "weight": 0.5, "b": [1, -2.5e3, True, None, {"c": []}]},
            ensure_ascii=False,
        ).encode(),
        b'{"weight": 1}',
        b'{"weight": -0.125e-2}',
        b"{}",
        b' {"weight" : 3 } \r',
        b'{"x": "\\u00e9\\n", "weight": 1E2}',
        b'{"weight": 1, "weight": "x"}',
        b'{"weight": [1]}',
        b'{"weight": true}',
        b'{"weight": 0.000001}',
    ]
    assert [compare(column) for column in columns] == [kernels.JSON_READ] * len(columns)
    left_to_python = [b'{"weight": NaN}', b'{"w\\u0065ight": 1}', b"[1, 2]", b'{"weight": 0.30000000000000004}']
    left_to_python += [b'{"weight": 1e400}', b'{"weight": 12345678901234567890}', b"\xef\xbb\xbf{}", b'{"a": 1,}']
    assert [compare(column) for column in left_to_python] == [kernels.JSON_FOR_PYTHON] * len(left_to_python)
    rng = np.random.default_rng(0)
    alphabet = list(b' \t\r{}[]":,\\-+.eE0123456789truefalsnweight\x00\x1f\x80\xc3\xa9\xed\xa0\xf0\x9f')
    read = 0
    for _ in range(20_000):
        text = bytearray(columns[int(rng.integers(len(columns)))])
        for _ in range(int(rng.integers(1, 4))):
            position = int(rng.integers(len(text) + 1))
            operation = rng.random()
            if operation < 0.4 and text:
                del text[min(position, len(text) - 1)]
            elif operation < 0.8:
                text.insert(position, int(rng.choice(alphabet)))
            elif text:
                text[min(position, len(text) - 1)] = int(rng.choice(alphabet))
        read += compare(bytes(text)) == kernels.JSON_READ
    assert 1000 < read < 19_000  # both paths are exercised
    for _ in range(5000):  # weights as Python and other writers print them
        value = float(
            rng.choice(
                [rng.uniform(-10, 10), round(rng.uniform(0, 20), 3), rng.exponential() * 10.0 ** rng.integers(-30, 30)]
            )
        )
        for text in (repr(value), f"{value:.3f}", f"{value:e}", f"{value:.17g}"):
            compare(b'{"weight": ' + text.encode() + b"}")


def test_json_columns_left_to_python_are_read_as_python_reads_them(tmp_path):
    lines = VALID[:1] + [
        VALID[1].replace('"weight": 1.0', '"weight": NaN'),  # 2: not a finite number
        VALID[2].replace('"weight": 0.5', '"w\\u0065ight": 3.0'),  # 3: an escaped key: kept, weight 3
        VALID[3].split("\t{")[0] + "\t[1, 2]",  # 4: not an object
        assertion("/r/IsA", "/c/en/bird", "/c/en/animal", weight=10**30),  # 5: an integer past 15 digits: kept
    ]
    graph = load_conceptnet(write(tmp_path / "assertions.csv", lines), min_weight=2.5)
    report = graph.report
    assert report.skipped == {"missing or non-numeric weight": 1, "bad json": 1, "weight below min_weight": 1}
    assert report.examples["bad json"][0].endswith(": json: expected a JSON object, got list")
    assert graph.num_triplets == 2  # lines 3 and 5; line 1 weighs 2.0


# ---------------------------------------------------------------------------------------------- parsed-graph cache
@pytest.fixture
def cached(tmp_path, monkeypatch):
    """Caching on for the small test files (the loader caches only files of a parse chunk or more), and a counter
    of the parses that ran."""
    monkeypatch.setattr(conceptnet, "_MIN_CACHED_BYTES", 0)
    parses = []
    read = conceptnet._ConceptNetReader.read

    def counted_read(reader):
        parses.append(reader.source)
        return read(reader)

    monkeypatch.setattr(conceptnet._ConceptNetReader, "read", counted_read)
    lines = [*VALID, "not\ta\tconceptnet\trow", assertion("/r/IsA", "/c/fr/chat", "/c/fr/animal")]
    return write(tmp_path / "assertions.csv.gz", lines, compress=True), tmp_path / "cache", parses


def test_a_second_load_reads_the_cache_and_equals_the_parse(cached):
    path, cache_dir, parses = cached
    parsed = load_conceptnet(path, cache_dir=cache_dir)
    again = load_conceptnet(path, cache_dir=cache_dir)
    assert len(parses) == 1
    assert_same_graph(again, parsed)
    assert again.report.skipped == {"wrong column count": 1, "language": 1}
    assert again.report.records_read == again.report.triplets_loaded + again.report.total_skipped
    assert_same_graph(load_conceptnet(path, use_cache=False), parsed)
    assert len(parses) == 2


def test_a_changed_file_or_other_arguments_parse_again(cached):
    path, cache_dir, parses = cached
    load_conceptnet(path, cache_dir=cache_dir)
    english_and_french = load_conceptnet(path, cache_dir=cache_dir, languages=("en", "fr"))
    assert english_and_french.num_triplets == len(VALID) + 1 and len(parses) == 2
    assert load_conceptnet(path, cache_dir=cache_dir, relations=["IsA"]).num_triplets == 1 and len(parses) == 3
    write(path, VALID[:2], compress=True)  # rewritten in place: new size and mtime
    assert load_conceptnet(path, cache_dir=cache_dir).num_triplets == 2 and len(parses) == 4
    assert load_conceptnet(path, cache_dir=cache_dir).num_triplets == 2 and len(parses) == 4
    modified = path.stat().st_mtime_ns + 10**9  # touched: same size, new modification time
    os.utime(path, ns=(modified, modified))
    load_conceptnet(path, cache_dir=cache_dir)
    assert len(parses) == 5
    # One entry per file and arguments: the rewritten file replaced its stale entry.
    assert len(list(cache_dir.iterdir())) == 3


def test_a_new_loader_version_or_a_broken_entry_parses_again(cached, monkeypatch, caplog):
    path, cache_dir, parses = cached
    load_conceptnet(path, cache_dir=cache_dir)
    monkeypatch.setattr(conceptnet, "_LOADER_VERSION", conceptnet._LOADER_VERSION + 1)
    load_conceptnet(path, cache_dir=cache_dir)
    assert len(parses) == 2
    (entry,) = cache_dir.iterdir()
    (entry / "knowledge_graph.json").write_text("{not json")
    graph = load_conceptnet(path, cache_dir=cache_dir)
    assert graph.num_triplets == len(VALID) and len(parses) == 3
    assert "unreadable cache entry, parsing again" in caplog.text
    load_conceptnet(path, cache_dir=cache_dir)
    assert len(parses) == 3  # the entry was rewritten


def test_an_unwritable_cache_is_reported_and_the_load_still_succeeds(cached, caplog):
    path, cache_dir, parses = cached
    cache_dir.write_text("a file where the cache directory should be")
    assert load_conceptnet(path, cache_dir=cache_dir).num_triplets == len(VALID)
    assert "cannot write the cache entry" in caplog.text


def test_small_files_and_use_cache_false_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOWLEDGE_CLIP_CACHE", str(tmp_path / "default-cache"))
    path = write(tmp_path / "assertions.csv", VALID)
    load_conceptnet(path)  # smaller than one parse chunk: parsed every time
    assert not (tmp_path / "default-cache").exists()
    monkeypatch.setattr(conceptnet, "_MIN_CACHED_BYTES", 0)
    load_conceptnet(path, use_cache=False)
    assert not (tmp_path / "default-cache").exists()
    load_conceptnet(path)
    assert len(list((tmp_path / "default-cache" / "conceptnet").iterdir())) == 1

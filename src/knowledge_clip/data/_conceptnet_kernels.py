"""The byte-level loops of the ConceptNet loader, compiled by numba.

numba ships wheels for every platform, so there is no build step at install; the machine code is compiled at first
use and cached on disk. The functions run without the GIL, so the loader's threads parse chunks on every core.

- `parse_chunk` splits a chunk of the assertions file into lines and fields, applies the byte rules (column count,
  ExternalURL, concept ends, languages) and reads the weight and concept URIs of the lines that pass them.
- `concept_labels` makes the labels of concept keys.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_TAB, _NEWLINE, _RETURN, _SPACE = 9, 10, 13, 32
_QUOTE, _BACKSLASH, _SLASH, _COMMA, _COLON, _UNDERSCORE = 34, 92, 47, 44, 58, 95
_OPEN_OBJECT, _CLOSE_OBJECT, _OPEN_ARRAY, _CLOSE_ARRAY = 123, 125, 91, 93
_MINUS, _PLUS, _DOT, _ZERO, _NINE, _LOWER_E, _UPPER_E, _LOWER_U = 45, 43, 46, 48, 57, 101, 69, 117

# ---------------------------------------------------------------------------------------------------------------
# Lines and fields. Eight bytes at a time, as little-endian uint64 words (Hacker's Delight, section 6-1).
_LOW_SEVEN_BITS = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH_BITS = np.uint64(0x8080808080808080)
_ELEVENS = np.uint64(0x0B0B0B0B0B0B0B0B)
_TABS = np.uint64(0x0909090909090909)
_NEWLINES = np.uint64(0x0A0A0A0A0A0A0A0A)
_QUOTES = np.uint64(0x2222222222222222)
_BACKSLASHES = np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACES = np.uint64(0x2020202020202020)
_BYTE_INDICES = np.uint64(0x0001020304050607)  # byte k holds 7 - k: see `_byte_index`
_PREFETCH_DISTANCE = 4096  # bytes ahead: more than the memory latency at the scan's speed (1024-8192: the same)


@intrinsic
def _prefetch(typing_context, array, index):
    """Asks the CPU to bring the cache line of ``array[index]`` in: the scan streams each chunk from memory once,
    and the hardware prefetcher alone leaves it waiting (measured: a third of its time)."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array_struct = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array_struct, [args[1]], wraparound=False)
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer.type, int32, int32, int32])
        function = builder.module.declare_intrinsic("llvm.prefetch", [byte_pointer.type], function_type)
        # A read, kept in all cache levels, of data.
        builder.call(function, [byte_pointer, ir.Constant(int32, 0), ir.Constant(int32, 3), ir.Constant(int32, 1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@numba.njit(nogil=True, cache=True, inline="always")
def _zero_bytes(word):
    """The high bit of each byte of `word` that is zero, and no other bit."""
    return ~(((word & _LOW_SEVEN_BITS) + _LOW_SEVEN_BITS) | word | _LOW_SEVEN_BITS)


@numba.njit(nogil=True, cache=True, inline="always")
def _byte_index(bit):
    """The index (0-7) of the byte whose high bit is `bit`, the only bit set."""
    # (bit >> 7) is 1 << 8k; times _BYTE_INDICES that moves its byte 7 - k, which holds k, to the top.
    return np.int64(((bit >> np.uint64(7)) * _BYTE_INDICES) >> np.uint64(56))


@numba.njit(nogil=True, cache=True)
def _partial_word(data, begin):
    """The bytes ``data[begin:begin + 8]`` as a little-endian uint64, zeros past the end of `data`."""
    word = np.uint64(0)
    for offset in range(min(8, data.size - begin)):
        word |= np.uint64(data[begin + offset]) << np.uint64(8 * offset)
    return word


# Why a line is dropped by rules 1-4 of the loader (in that order); `KEPT` lines are candidates for rules 5-8.
KEPT, WRONG_COLUMN_COUNT, EXTERNAL_URL, NON_CONCEPT, LANGUAGE = range(5)


def byte_patterns(values: list[bytes]) -> np.ndarray:
    """Byte strings as `parse_chunk` compares them, one row each: the length, then per 8 bytes the bytes as a
    little-endian uint64 and the mask of the bytes that count."""
    blocks = max((len(value) + 7) // 8 for value in values)
    patterns = np.zeros((len(values), 1 + 2 * blocks), dtype=np.uint64)
    for row, value in enumerate(values):
        patterns[row, 0] = len(value)
        for block in range(0, len(value), 8):
            part = value[block : block + 8]
            patterns[row, 1 + block // 4] = int.from_bytes(part, "little")
            patterns[row, 2 + block // 4] = (1 << (8 * len(part))) - 1
    return patterns


# Columns of `parse_chunk`'s candidate table: the line, its four tabs, the text segments of its start and end URIs.
LINE, TABS, START_TEXT, END_TEXT = 0, slice(1, 5), slice(5, 7), slice(7, 9)


@numba.njit(nogil=True, cache=True)
def parse_chunk(data, words, patterns, line_ends, reasons, candidates, json_status, weights):
    """Splits a chunk into lines and fields in one pass over its bytes, applies rules 1-4 to every line, and reads
    the JSON column and the concept URIs of the lines that pass (the candidates) while their bytes are in the cache.

    The bytes are read 8 at a time: only the words holding a byte below 11 (a tab, a newline or another control
    byte) are looked at closely.

    Args:
        data: The chunk's bytes (uint8).
        words: ``words[i]`` is ``data[i:i + 8]`` as a little-endian uint64 (``data.size - 7`` of them).
        patterns: `byte_patterns` of "/r/ExternalURL", "/c/" and the languages' "/c/<code>/" (none: all).
        line_ends: Filled per line with where it ends: its newline, or the chunk's end for a last line without one.
        reasons: Filled per line with why rules 1-4 drop it, or `KEPT`.
        candidates: Filled per candidate with its line, its tabs and the text segments of its URIs (`LINE`,
            `TABS`, `START_TEXT`, `END_TEXT`; see `_text_segment`); shape ``(capacity, 9)``.
        json_status, weights: Filled per candidate with `_json_weight` of its JSON column.

    Returns:
        The number of lines and of candidates, or (-1, -1) if `line_ends` is too short.
    """
    num_words = data.size // 8
    num_languages = patterns.shape[0] - 2

    def starts_with(begin, end, pattern):
        length = np.int64(patterns[pattern, 0])
        if end - begin < length:
            return False
        for block in range((length + 7) // 8):
            at = begin + 8 * block
            word = words[at] if at < words.size else _partial_word(data, at)
            if word & patterns[pattern, 2 + 2 * block] != patterns[pattern, 1 + 2 * block]:
                return False
        return True

    def in_languages(begin, end):
        for language in range(2, 2 + num_languages):
            if starts_with(begin, end, language):
                return True
        return num_languages == 0

    row = 0
    num_candidates = 0
    tabs = 0  # on the current line
    tab_0 = tab_1 = tab_2 = tab_3 = 0  # its last four; the only ones that matter on a line with four
    for index in range(num_words + 1):
        if index < num_words:
            if index & 7 == 0 and 8 * index + _PREFETCH_DISTANCE < words.size:  # once per cache line
                _prefetch(words, 8 * index + _PREFETCH_DISTANCE)
            word = words[8 * index]
            if (word - _ELEVENS) & ~word & _HIGH_BITS == 0:  # no byte below 11
                continue
            separators = _zero_bytes(word ^ _TABS)
        else:  # the last bytes, with a newline after a last line that has none
            tail = data.size - 8 * num_words
            word = _partial_word(data, 8 * num_words)
            if data.size and data[data.size - 1] != _NEWLINE:
                word |= np.uint64(_NEWLINE) << np.uint64(8 * tail)
            # The zeros past the end are no tabs.
            separators = _zero_bytes(word ^ _TABS) & ((np.uint64(1) << np.uint64(8 * tail)) - np.uint64(1))
        if row + 8 > line_ends.size:  # no room for the lines this word may end
            return -1, -1
        newlines = _zero_bytes(word ^ _NEWLINES)
        separators |= newlines
        while separators:
            bit = separators & (~separators + np.uint64(1))  # the lowest one
            position = 8 * index + _byte_index(bit)
            separators ^= bit
            if not newlines & bit:
                tab_0, tab_1, tab_2, tab_3 = tab_1, tab_2, tab_3, position
                tabs += 1
                continue
            line_ends[row] = position
            if tabs != 4:
                reasons[row] = WRONG_COLUMN_COUNT
            elif tab_1 - tab_0 - 1 == np.int64(patterns[0, 0]) and starts_with(tab_0 + 1, tab_1, 0):
                reasons[row] = EXTERNAL_URL
            elif not (starts_with(tab_1 + 1, tab_2, 1) and starts_with(tab_2 + 1, tab_3, 1)):
                reasons[row] = NON_CONCEPT
            elif not (in_languages(tab_1 + 1, tab_2) and in_languages(tab_2 + 1, tab_3)):
                reasons[row] = LANGUAGE
            else:
                reasons[row] = KEPT
                candidates[num_candidates, 0] = row
                candidates[num_candidates, 1] = tab_0
                candidates[num_candidates, 2] = tab_1
                candidates[num_candidates, 3] = tab_2
                candidates[num_candidates, 4] = tab_3
                candidates[num_candidates, 5], candidates[num_candidates, 6] = _text_segment(data, tab_1 + 1, tab_2)
                candidates[num_candidates, 7], candidates[num_candidates, 8] = _text_segment(data, tab_2 + 1, tab_3)
                json_status[num_candidates], weights[num_candidates] = _json_weight(data, words, tab_3 + 1, position)
                num_candidates += 1
            row += 1
            tabs = 0
    return row, num_candidates


# ---------------------------------------------------------------------------------------------------------------
# Concept URIs.


@numba.njit(nogil=True, cache=True)
def _text_segment(data, begin, end):
    """Where the text segment of the concept URI ``data[begin:end]`` (``/c/<lang>/<text>[/...]``) begins and
    ends; both are `end` when the URI has no language or no text."""
    slashes = 0
    text_begin = end
    for position in range(begin, end):
        if data[position] == _SLASH:
            slashes += 1
            if slashes == 3:  # the end of the language
                if position == begin + 3:
                    return end, end
                text_begin = position + 1
            elif slashes == 4:  # the end of the text
                return text_begin, position
    return text_begin, end


@numba.njit(nogil=True, cache=True)
def concept_labels(offsets, data):
    """The labels of the concept URIs ``data[offsets[i]:offsets[i + 1]]``, their text segments with ``_`` replaced
    by spaces (``/c/en/ice_cream/n`` -> "ice cream"), as the offsets (int32) and bytes of a string array."""
    count = offsets.size - 1
    label_offsets = np.empty(count + 1, dtype=np.int32)
    label_bytes = np.empty(offsets[count] - offsets[0], dtype=np.uint8)
    size = 0
    label_offsets[0] = 0
    for index in range(count):
        text_begin, text_end = _text_segment(data, offsets[index], offsets[index + 1])
        for position in range(text_begin, text_end):
            label_bytes[size] = _SPACE if data[position] == _UNDERSCORE else data[position]
            size += 1
        label_offsets[index + 1] = size
    return label_offsets, label_bytes[:size]


# ---------------------------------------------------------------------------------------------------------------
# The JSON column: a strict reader of RFC 8259 JSON that finds the top-level "weight". What it does not accept it
# leaves to Python's `json` (which decides what is an error), so it must never accept what `json.loads` rejects.
JSON_READ, JSON_FOR_PYTHON = 0, 1
_WEIGHT_KEY = np.frombuffer(b"weight", dtype=np.uint8)
_TRUE = np.frombuffer(b"true", dtype=np.uint8)
_FALSE = np.frombuffer(b"false", dtype=np.uint8)
_NULL = np.frombuffer(b"null", dtype=np.uint8)
_SIMPLE_ESCAPES = np.frombuffer(b'"\\/bfnrt', dtype=np.uint8)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdefABCDEF", dtype=np.uint8)
_POWERS_OF_TEN = np.array([10.0**exponent for exponent in range(23)])  # all exact in float64
_MAX_DEPTH = 64  # nesting levels, one bit each in a uint64
# What the reader expects next.
_KEY_OR_CLOSE, _KEY, _COLON_NEXT, _VALUE_OR_CLOSE, _VALUE, _COMMA_OR_CLOSE = range(6)


@numba.njit(nogil=True, cache=True)
def _json_weight(data, words, begin, end):
    """Reads ``data[begin:end]`` as a JSON object and returns ``(JSON_READ, weight)``, the weight being the value of
    its top-level "weight" key (the last one, as in Python), NaN when it has none or it is not a number; or
    ``(JSON_FOR_PYTHON, NaN)`` when the text is not a valid JSON object, or is unusual in a way this reader leaves
    to Python (NaN and Infinity literals, escaped top-level keys, more than `_MAX_DEPTH` levels, a weight that
    needs more than one rounding)."""

    # Inner functions see `data` and `end` without taking them: numba inlines them, where calls with arrays
    # would cost more than the work.
    def skip_whitespace(position):
        while position < end and (
            data[position] == _SPACE
            or data[position] == _TAB
            or data[position] == _NEWLINE
            or data[position] == _RETURN
        ):
            position += 1
        return position

    def matches(position, word):
        if position + word.size > end:
            return False
        for offset in range(word.size):
            if data[position + offset] != word[offset]:
                return False
        return True

    def utf8_sequence_length(position):
        """The length (2-4) of the valid UTF-8 sequence that starts at `position`, 0 if there is none."""
        lead = data[position]
        if 0xC2 <= lead <= 0xDF:
            length, low, high = 2, 0x80, 0xBF
        elif lead == 0xE0:  # no overlong forms
            length, low, high = 3, 0xA0, 0xBF
        elif 0xE1 <= lead <= 0xEC or 0xEE <= lead <= 0xEF:
            length, low, high = 3, 0x80, 0xBF
        elif lead == 0xED:  # no UTF-16 surrogates
            length, low, high = 3, 0x80, 0x9F
        elif lead == 0xF0:
            length, low, high = 4, 0x90, 0xBF
        elif 0xF1 <= lead <= 0xF3:
            length, low, high = 4, 0x80, 0xBF
        elif lead == 0xF4:  # up to U+10FFFF
            length, low, high = 4, 0x80, 0x8F
        else:
            return 0
        if position + length > end or not low <= data[position + 1] <= high:
            return 0
        for offset in range(2, length):
            if not 0x80 <= data[position + offset] <= 0xBF:
                return 0
        return length

    def string_end(position):
        """For the string whose opening quote is at `position`: the position after its closing quote (-1 if it is
        not valid JSON or not valid UTF-8), and whether it has escapes."""
        position += 1
        escaped = False
        while position < end:
            # Eight plain bytes at a time: no quote, backslash, control character or non-ASCII byte.
            while position + 8 <= end:
                word = words[position]
                if (
                    _zero_bytes(word ^ _QUOTES) | _zero_bytes(word ^ _BACKSLASHES) | ((word - _SPACES) & ~word) | word
                ) & _HIGH_BITS:
                    break
                position += 8
            if position == end:
                break
            byte = data[position]
            if byte == _QUOTE:
                return position + 1, escaped
            if byte == _BACKSLASH:
                escaped = True
                if position + 1 < end and _is_one_of(data[position + 1], _SIMPLE_ESCAPES):
                    position += 2
                elif position + 6 <= end and data[position + 1] == _LOWER_U:
                    for offset in range(2, 6):
                        if not _is_one_of(data[position + offset], _HEX_DIGITS):
                            return -1, escaped
                    position += 6
                else:
                    return -1, escaped
            elif byte < 0x20:  # control characters must be escaped
                return -1, escaped
            elif byte < 0x80:
                position += 1
            else:
                length = utf8_sequence_length(position)
                if length == 0:
                    return -1, escaped
                position += length
        return -1, escaped

    def digits_end(position):
        while position < end and _ZERO <= data[position] <= _NINE:
            position += 1
        return position

    def number(position):
        """For the JSON number at `position`: the position after it (-1 if it is not one) and its value, NaN unless
        one correctly rounded operation gives it (at most 15 significant digits and a power of ten up to 22, the
        exact float64 powers), so that it equals Python's."""
        begin = position
        if data[position] == _MINUS:
            position += 1
        integer_begin = position
        position = digits_end(position)
        if position == integer_begin or (data[integer_begin] == _ZERO and position > integer_begin + 1):
            return -1, np.nan  # no digits, or a leading zero
        fraction_begin = fraction_end = position
        if position < end and data[position] == _DOT:
            fraction_begin = position + 1
            fraction_end = position = digits_end(fraction_begin)
            if fraction_end == fraction_begin:
                return -1, np.nan
        exponent = 0
        if position < end and (data[position] == _LOWER_E or data[position] == _UPPER_E):
            position += 1
            negative_exponent = position < end and data[position] == _MINUS
            if position < end and (data[position] == _MINUS or data[position] == _PLUS):
                position += 1
            exponent_begin = position
            position = digits_end(position)
            if position == exponent_begin:
                return -1, np.nan
            for digit in range(exponent_begin, min(position, exponent_begin + 4)):
                exponent = 10 * exponent + (data[digit] - _ZERO)
            if position > exponent_begin + 4:
                exponent = 10000  # far out of range either way
            if negative_exponent:
                exponent = -exponent
        # The significant digits: the integer and fraction digits without the leading zeros.
        mantissa = 0
        significant = 0
        for digit in range(integer_begin, fraction_end):
            if digit == fraction_begin - 1 and fraction_begin != fraction_end:
                continue  # the dot
            if significant or data[digit] != _ZERO:
                significant += 1
                if significant > 15:
                    return position, np.nan
                mantissa = 10 * mantissa + (data[digit] - _ZERO)
        exponent -= fraction_end - fraction_begin
        if not -22 <= exponent <= 22:
            return position, np.nan
        if exponent >= 0:
            value = mantissa * _POWERS_OF_TEN[exponent]
        else:
            value = mantissa / _POWERS_OF_TEN[-exponent]
        return position, -value if data[begin] == _MINUS else value

    position = skip_whitespace(begin)
    if position == end or data[position] != _OPEN_OBJECT:
        return JSON_FOR_PYTHON, np.nan
    position += 1
    depth = 1
    objects = np.uint64(1)  # bit k: whether the container at depth k + 1 is an object (else an array)
    expect = _KEY_OR_CLOSE
    weight = np.nan
    reading_weight = False  # the value being read is the top-level "weight"'s
    while True:
        position = skip_whitespace(position)
        if position == end:
            return JSON_FOR_PYTHON, np.nan
        byte = data[position]
        in_object = (objects >> np.uint64(depth - 1)) & np.uint64(1) == 1
        if expect == _COLON_NEXT:
            if byte != _COLON:
                return JSON_FOR_PYTHON, np.nan
            position += 1
            expect = _VALUE
        elif (
            expect == _COMMA_OR_CLOSE
            or (expect == _KEY_OR_CLOSE and byte == _CLOSE_OBJECT)
            or (expect == _VALUE_OR_CLOSE and byte == _CLOSE_ARRAY)
        ):
            if byte == _COMMA and expect == _COMMA_OR_CLOSE:
                expect = _KEY if in_object else _VALUE
                position += 1
            elif byte == (_CLOSE_OBJECT if in_object else _CLOSE_ARRAY):
                depth -= 1
                position += 1
                if depth == 0:  # the end of the object: only whitespace may follow
                    if skip_whitespace(position) != end:
                        return JSON_FOR_PYTHON, np.nan
                    return JSON_READ, weight
                expect = _COMMA_OR_CLOSE
            else:
                return JSON_FOR_PYTHON, np.nan
        elif expect == _KEY_OR_CLOSE or expect == _KEY:
            if byte != _QUOTE:
                return JSON_FOR_PYTHON, np.nan
            after, escaped = string_end(position)
            if after < 0 or (depth == 1 and escaped):
                return JSON_FOR_PYTHON, np.nan
            reading_weight = depth == 1 and after - position - 2 == _WEIGHT_KEY.size
            reading_weight = reading_weight and matches(position + 1, _WEIGHT_KEY)
            position = after
            expect = _COLON_NEXT
        else:  # a value
            value = np.nan
            if byte == _OPEN_OBJECT or byte == _OPEN_ARRAY:
                if depth == _MAX_DEPTH:
                    return JSON_FOR_PYTHON, np.nan
                if byte == _OPEN_OBJECT:
                    objects |= np.uint64(1) << np.uint64(depth)
                    expect = _KEY_OR_CLOSE
                else:
                    objects &= ~(np.uint64(1) << np.uint64(depth))
                    expect = _VALUE_OR_CLOSE
                depth += 1
                position += 1
            else:
                if byte == _QUOTE:
                    position, _ = string_end(position)
                elif byte == _MINUS or _ZERO <= byte <= _NINE:
                    position, value = number(position)
                    if reading_weight and value != value:  # a number this reader does not round like Python
                        return JSON_FOR_PYTHON, np.nan
                elif matches(position, _TRUE):
                    position += _TRUE.size
                elif matches(position, _FALSE):
                    position += _FALSE.size
                elif matches(position, _NULL):
                    position += _NULL.size
                else:
                    return JSON_FOR_PYTHON, np.nan
                if position < 0:
                    return JSON_FOR_PYTHON, np.nan
                expect = _COMMA_OR_CLOSE
            if reading_weight:
                weight = value
                reading_weight = False


@numba.njit(nogil=True, cache=True)
def _is_one_of(byte, values):
    for value in values:
        if byte == value:
            return True
    return False

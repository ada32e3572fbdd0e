"""Message text: parse_mode HTML (parsing, validation), UTF-16 lengths, entities, and
rendering explicit entities back to HTML."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from aiogram.types import MessageEntity
from aiogram.utils.text_decorations import html_decoration
from pydantic import ValidationError

from playground.telegram.errors import ApiError, JsonDict, bad_request
from playground.telegram.params import compact

_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAR_REF = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([a-zA-Z][a-zA-Z0-9]*));")
_PLAIN_RUN = re.compile(r"[^<&]+")


def utf16_length(text: str) -> int:
    """Telegram measures entity offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the plain text
    out_index: int  # where the tag's content starts in the output pieces
    language: str | None = None


class _HtmlParser:
    """Telegram's HTML subset, with tdlib's error messages (offsets in UTF-8 bytes)."""

    def __init__(self, source: str, strict: bool) -> None:
        self.src = source
        self.strict = strict
        self.pos = 0
        self.out: list[str] = []
        self.size = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[JsonDict] = []

    def parse(self) -> tuple[str, list[JsonDict]]:
        while self.pos < len(self.src):
            char = self.src[self.pos]
            if char == "<":
                self._tag()
            elif char == "&":
                decoded, self.pos = self._char_ref(self.pos, strict=self.strict)
                self._emit(decoded)
            else:
                run = _PLAIN_RUN.match(self.src, self.pos)
                assert run is not None
                self._emit(run.group())
                self.pos = run.end()
        if self.stack:
            name = self.stack[-1].name
            raise self._error(f'Can\'t find end tag corresponding to start tag "{name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def _error(self, detail: str) -> ApiError:
        return bad_request(f"can't parse entities: {detail}")

    def _byte(self, pos: int) -> int:
        return len(self.src[:pos].encode("utf-8"))

    def _emit(self, text: str) -> None:
        self.out.append(text)
        self.size += utf16_length(text)

    def _char_ref(self, pos: int, *, strict: bool) -> tuple[str, int]:
        match = _CHAR_REF.match(self.src, pos)
        decoded = _decode_char_ref(match) if match else None
        if match and decoded is not None:
            return decoded, match.end()
        if strict:
            raise self._error(
                f'unescaped "&" at byte offset {self._byte(pos)}: write it as "&amp;"'
            )
        return "&", pos + 1  # what tdlib does with an "&" that is not an entity

    def _decode(self, start: int, end: int) -> str:
        """An attribute value. Always lenient: aiogram's html.link() leaves "&" in URLs raw."""
        pieces: list[str] = []
        pos = start
        while pos < end:
            amp = self.src.find("&", pos, end)
            if amp == -1:
                pieces.append(self.src[pos:end])
                break
            pieces.append(self.src[pos:amp])
            decoded, pos = self._char_ref(amp, strict=False)
            pieces.append(decoded)
        return "".join(pieces)

    def _tag(self) -> None:
        begin = self.pos
        if self.src.startswith("</", begin):
            self._end_tag(begin)
            return
        end = begin + 1
        while end < len(self.src) and not self.src[end].isspace() and self.src[end] != ">":
            end += 1
        if end >= len(self.src):
            raise self._error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        name = self.src[begin + 1 : end].lower()
        if name not in _TAG_ENTITY:
            raise self._error(f'Unsupported start tag "{name}" at byte offset {self._byte(begin)}')
        attrs, self.pos = self._attributes(name, end, begin)
        self._check_attributes(name, attrs, begin)
        self.stack.append(_OpenTag(name, attrs, self.size, len(self.out)))

    def _attributes(self, tag: str, pos: int, begin: int) -> tuple[dict[str, str], int]:
        src = self.src
        attrs: dict[str, str] = {}
        unclosed = self._error(f"Unclosed start tag at byte offset {self._byte(begin)}")
        while True:
            while pos < len(src) and src[pos].isspace():
                pos += 1
            if pos >= len(src):
                raise unclosed
            if src[pos] == ">":
                return attrs, pos + 1
            start = pos
            while pos < len(src) and not src[pos].isspace() and src[pos] not in "=>":
                pos += 1
            name = src[start:pos].lower()
            if not name:
                raise self._error(
                    f'Empty attribute name in the tag "{tag}" at byte offset {self._byte(start)}'
                )
            while pos < len(src) and src[pos].isspace():
                pos += 1
            value = ""
            if pos < len(src) and src[pos] == "=":
                value, pos = self._attribute_value(pos + 1, unclosed)
            attrs[name] = value

    def _attribute_value(self, pos: int, unclosed: ApiError) -> tuple[str, int]:
        src = self.src
        while pos < len(src) and src[pos].isspace():
            pos += 1
        if pos >= len(src):
            raise unclosed
        if src[pos] in "\"'":
            close = src.find(src[pos], pos + 1)
            if close == -1:
                raise unclosed
            return self._decode(pos + 1, close), close + 1
        start = pos
        while pos < len(src) and not src[pos].isspace() and src[pos] != ">":
            pos += 1
        return self._decode(start, pos), pos

    def _check_attributes(self, name: str, attrs: dict[str, str], begin: int) -> None:
        where = f"at byte offset {self._byte(begin)}"
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise self._error(f'Tag "span" must have class "tg-spoiler" {where}')
        if name == "tg-emoji" and not attrs.get("emoji-id"):
            raise self._error(f'Tag "tg-emoji" must have attribute "emoji-id" {where}')

    def _end_tag(self, begin: int) -> None:
        close = self.src.find(">", begin)
        if close == -1:
            raise self._error(f"Unclosed end tag at byte offset {self._byte(begin)}")
        name = self.src[begin + 2 : close].strip().lower()
        if not self.stack:
            raise self._error(f"Unexpected end tag at byte offset {self._byte(begin)}")
        top = self.stack[-1]
        if name != top.name:
            raise self._error(
                f"Unmatched end tag at byte offset {self._byte(begin)}, "
                f'expected "</{top.name}>", found "</{name}>"'
            )
        self.stack.pop()
        self.pos = close + 1
        self._close(top)

    def _close(self, tag: _OpenTag) -> None:
        if tag.name == "code" and self.stack and self.stack[-1].name == "pre":
            # <pre><code class="language-x"> is one pre entity with a language, not two.
            language = tag.attrs.get("class", "")
            if language.startswith("language-"):
                self.stack[-1].language = language.removeprefix("language-")
            return
        length = self.size - tag.start
        if length == 0:
            return  # Telegram drops empty entities
        entity: JsonDict = {"type": _TAG_ENTITY[tag.name], "offset": tag.start, "length": length}
        if tag.name == "a":
            entity["url"] = tag.attrs.get("href") or "".join(self.out[tag.out_index :])
        elif tag.name == "pre" and tag.language:
            entity["language"] = tag.language
        elif tag.name == "blockquote" and "expandable" in tag.attrs:
            entity["type"] = "expandable_blockquote"
        elif tag.name == "tg-emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def _decode_char_ref(match: re.Match[str]) -> str | None:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        return _NAMED_ENTITIES.get(name)
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def parse_html(source: str, *, strict: bool = True) -> tuple[str, list[JsonDict]]:
    """Plain text and entities of `source` in parse_mode HTML, or ApiError 400 like Telegram."""
    return _HtmlParser(source, strict).parse()


def trim_text(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Strip surrounding whitespace as Telegram does, keeping the entities in place."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_length(text[: len(text) - len(text.lstrip())])
    size = utf16_length(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --- explicit entities and commands ---------------------------------------------------

COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{3,32}))?")


def command_entities(text: str) -> list[JsonDict]:
    command = COMMAND.match(text)
    if command is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": len(command.group())}]


def entities_param(value: Any) -> list[JsonDict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise bad_request("can't parse entities JSON object")
    return [compact(e) for e in value]


def render_html(text: str, entities: list[JsonDict]) -> str:
    """The HTML of a message sent with explicit entities (for the playground to draw)."""
    if not entities:
        return html.escape(text, quote=False)
    try:
        parsed = [MessageEntity.model_validate(e) for e in entities]
    except ValidationError as error:
        raise bad_request("can't parse entities JSON object") from error
    return html_decoration.unparse(text, parsed)

"""Prompt detection: LLM prompt templates and system-prompt phrasing."""

from __future__ import annotations

from router.classify.detectors import BaseDetector, _any_of, linear
from router.classify.model import Category

# Line-anchored markers allow only horizontal space before them ([^\S\n]: whitespace but newline).
_PROMPT_HINTS = (b"you are", b"{{", b"##", b"system", b"assistant", b"<|", b"[inst]", b"<<sys>>")
_PROMPT_STRONG = linear("|".join((
    r"<\|(?:im_start|im_end|system|user|assistant|begin_of_text)\|>",
    r"\[INST\]|<<SYS>>",
    r"(?im:^[^\S\n]*#{2,}[^\S\n]*(?:instruction|instructions|system prompt)\b)",
)))
_PROMPT_WEAK = (
    linear(r"(?im)(?:^|[.!?]\s+)you are (?:a|an|the)\s+\w+"),              # role preamble
    linear(r"\{\{\s*[A-Za-z_][\w.]*\s*\}\}"),                               # {{placeholder}}
    linear(r"(?im)^[^\S\n]*(?:system|user|assistant|human|ai)[^\S\n]*:"),  # chat role markers
    linear(r"(?im)^[^\S\n]*#{2,}[^\S\n]*(?:response|input|context|output|examples?)\b"),
)


class PromptDetector(BaseDetector):
    """Text that looks like an LLM prompt template.

    A hit needs one strong marker (chat-template tokens, ``[INST]``, ``### Instruction``) or two
    different weak ones (a "You are a ..." preamble, ``{{placeholder}}``, ``system:``/``user:``
    role lines, ``### Response``-style headings): one polite "you are a great team" is not a prompt.
    """

    name = "prompt"
    category = Category.PROPRIETARY_PROMPT
    min_length = 6  # [INST]
    timestamp_clean = True
    screen_pattern = _any_of(_PROMPT_HINTS)

    def match(self, data: bytes) -> bool:
        if _PROMPT_STRONG.search(data) is not None:
            return True
        hits = 0
        for p in _PROMPT_WEAK:
            if p.search(data) is not None:
                hits += 1
                if hits == 2:
                    return True
        return False

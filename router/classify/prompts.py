"""Prompt detection: LLM prompt templates and system-prompt phrasing, in English, German, French,
Spanish, Italian and Dutch, and prompt-field names.

A text is a prompt on one *strong* marker or two different *weak* ones:

strong
    chat-template tokens (``<|im_start|>``, ``[INST]``, ``<<SYS>>``), prompt role tags
    (``<system>``, ``<instructions>``, ``<assistant>``), ``### Instruction`` headings, a
    role preamble that casts the reader as an assistant or model ("You are a helpful assistant",
    "Du bist ein freundlicher KI-Assistent", "Tu es un assistant", "Eres un asistente",
    "Sei un assistente", "Je bent een behulpzame assistent"), "ignore previous instructions";
weak
    any other "You are a/an ..." / "Act as ..." preamble (in the six languages), template
    placeholders (``{{name}}``, ``{$name}``, ``${name}``, ``<<name>>``), ``system:`` / ``user:``
    role lines, ``### Response``-style headings, and prompt instructions ("Your task is to",
    "Respond only in JSON", "Given the following", "Deine Aufgabe ist", "Réponds uniquement",
    "Responde solo", "Rispondi solo", "Antwoord alleen").

So a short prompt counts ("You are a helpful assistant." or "Summarise the following call:
{{transcript}}"), while a polite e-mail does not: "you are a great team" names no assistant role,
and one weak marker alone is never enough. Every pattern is RE2 (linear time).
"""

from __future__ import annotations

from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from router.classify.detectors import BaseDetector, Pattern, finder, linear, spans
from router.classify.model import Category

# Line-anchored markers allow only horizontal space before them ([^\S\n]: whitespace but newline).
_H = r"[^\S\n]"
_WORDS = r"(?:[\pL\pN'\x{2019}-]+,?\s+){0,3}"  # up to three adjectives ("helpful, friendly and concise")
_AI_NOUNS = (  # unambiguous: a model or a bot, in en, de, fr, es, it, nl
    r"chatbot|bot|ai|a\.i\.|llm|gpt|(?:large )?language model|copilot|ai[ -]assistant|"
    r"ki|ki-assistent(?:in)?|ki-modell|sprachmodell|"
    r"ia|assistant ia|modèle de langage|agent conversationnel|"
    r"asistente (?:de )?ia|modelo de lenguaje|"
    r"assistente (?:di )?ia|modello (?:linguistico|di linguaggio)|"
    r"ai-assistent|taalmodel"
)
_ASSISTANT = r"assistant|assistent(?:in)?|assistante|asistente|assistente"
_AI_ADJECTIVES = (  # an assistant may be a person; these make it software
    r"helpful|virtual|digital|ai|smart|intelligent|automated|conversational|"
    r"hilfreiche[rn]?|hilfsbereite[rn]?|virtuelle[rn]?|digitale[rn]?|intelligente[rn]?|"
    r"utile|virtuel(?:le)?|numérique|intelligente?|"
    r"útil|virtual|inteligente|digital|"
    r"virtuale|digitale|"
    r"behulpzame|virtuele|slimme|digitale"
)
_YOU_ARE = (
    r"you are|you're|du bist|sie sind|ihr seid|tu es|vous êtes|eres|usted es|sois|sei|lei è|siete|"
    r"je bent|jij bent|u bent"
)
_ARTICLE = r"(?:(?:a|an|the|ein|eine|einen|der|die|un|une|le|la|una|uno|il|lo|een|de|het)\s+|un'|l')"
_SENTENCE_START = r"(?:^|[.!?:\n]\s*)"
_NOUN_END = (  # the role noun ends its phrase: "an AI that ...", not "the best AI team"
    r"(?:\s*(?:[.,:;!)\n]|$)|\s+(?:that|who|which|for|designed|trained|built|speciali[sz]ed|working|helping|named|"
    r"called|and|with|in|at|on|of|from|to|der|die|das|für|mit|von|bei|qui|pour|de|du|avec|que|para|con|di|per|"
    r"che|dat|voor|met|van|bij|tasked|responsible)\b)"
)
_ROLE_PREAMBLE = (rf"(?i:{_SENTENCE_START}(?:{_YOU_ARE})\s+{_ARTICLE}?{_WORDS}"
                  rf"(?:(?:{_AI_NOUNS})|(?:{_AI_ADJECTIVES})\s+{_WORDS}\pL*-?(?:{_ASSISTANT})"
                  rf"|\pL*-?(?:{_ASSISTANT})\s+(?:ia|ai|ki|virtual|virtuale|virtuel)){_NOUN_END})")
_ACT_AS = (r"(?i:\b(?:act as|pretend (?:to be|you are)|role[- ]?play as|agis(?:sez)? comme|actúa como|"
           r"agisci come|gedraag je als|handle als|fungiere als|verhalte dich wie)\b)")
_ANY_PREAMBLE = rf"(?i:{_SENTENCE_START}(?:{_YOU_ARE})\s+{_ARTICLE})"
_INSTRUCTIONS = (
    r"(?i:\b(?:"
    r"your (?:task|job|role|goal) is to|you will (?:be given|receive)|given the following|"
    r"(?:respond|answer|reply|write|output)(?: only)? (?:in|as|with) (?:json|markdown|english|german|french|"
    r"spanish|italian|dutch|one (?:word|sentence)|(?:a |the )?(?:bullet points|list|table))|"
    r"(?:summari[sz]e|translate|classify|rewrite|extract) (?:the following|this|the text|the email)|"
    r"do not (?:reveal|mention|disclose) (?:these|your|the) (?:instructions|system prompt|prompt)|"
    r"step[- ]by[- ]step|think carefully|"
    r"deine aufgabe ist|ihre aufgabe ist|antworte (?:nur|immer|ausschließlich|auf|in)|"
    r"fasse (?:den|die|das) folgenden?|übersetze (?:den|die|das) folgenden?|"
    r"ta tâche est|votre tâche est|réponds? (?:uniquement|toujours|en)|répondez (?:uniquement|toujours|en)|"
    r"résume[sz]? (?:le|la|les) (?:texte|message|e-mail|conversation)? ?suivante?s?|"
    r"tu tarea es|su tarea es|responde (?:solo|siempre|en|únicamente)|resume (?:el|la) (?:siguiente|texto)|"
    r"il tuo compito è|rispondi (?:solo|sempre|in|esclusivamente)|riassumi (?:il|la|i|le) (?:seguente|testo)|"
    r"jouw taak is|je taak is|uw taak is|antwoord (?:alleen|altijd|in)|vat (?:de|het) (?:volgende|tekst)"
    r")\b)"
)
# Unbounded repeats: a counted repeat of a Unicode class takes RE2 most of a second to compile.
_TEMPLATE = (r"\{\{-?\s*[\pL_][^{}\n]*\}\}|\{\$[\pL_][\pL\pN_.]*\}|\{[a-z_][a-z0-9_.]{1,40}\}|"
             r"\$\{[a-z_][\w.]*\}|<<[A-Za-z_]\w*>>|\{%-?\s*(?:if|for|set)\b")
_ROLE_LINE = (rf"(?im:^{_H}*(?:system|user|assistant|human|ai|bot|benutzer|nutzer|utilisateur|usuario|utente|"
              rf"gebruiker|assistent|assistente|asistente|système|sistema|systeem|input|output|eingabe|ausgabe|"
              rf"entrée|sortie|entrada|salida|ingresso|uscita|invoer|uitvoer){_H}*:)")
# A text or line that opens with a task for a model ("Summarise the call ...", "Antworte immer ...").
_OPENING = (
    rf"(?im:^{_H}*(?:summari[sz]e|translate|rewrite|write|draft|classify|extract|answer|respond|reply|generate|"
    r"compose|explain|formulate|act as|"
    r"antworte|fasse|übersetze|schreibe|formuliere|erstelle|nenne|klassifiziere|beantworte|verfasse|"
    r"résume|rédige|traduis|réponds|écris|classe|génère|agis|"
    r"resume|redacta|traduce|responde|escribe|clasifica|genera|actúa|"
    r"riassumi|scrivi|traduci|rispondi|redigi|classifica|genera|agisci|comportati|"
    r"vat|schrijf|vertaal|antwoord|beantwoord|formuleer|classificeer|genereer|gedraag)\b)"
)
# Constraints on a model's output: length, format, tone.
_CONSTRAINTS = (
    r"(?i:\b(?:in|en|im|op)\s+(?:\d+|one|two|three|four|five|zwei|drei|vier|fünf|deux|trois|quatre|cinq|dos|tres|"
    r"cuatro|cinco|due|tre|quattro|cinque|twee|drie|vier|vijf)\s+(?:bullets?|bullet points|points|sentences?|words|"
    r"paragraphs?|lines|punkten|sätzen|stichpunkten|wörtern|phrases|mots|puntos|frases|palabras|punti|frasi|parole|"
    r"punten|zinnen|woorden)\b|"
    r"\b(?:under|at most|max(?:imum|imal)?|höchstens|maximum|máximo|massimo|maximaal)\s+\d+\s+"
    r"(?:words|characters|wörter|zeichen|mots|caractères|palabras|caracteres|parole|caratteri|woorden|tekens)\b|"
    r"\b(?:in|with) an? (?:friendly|formal|polite|professional|neutral|empathetic) tone\b|"
    r"\bim sie-ton\b|\bim du-ton\b|\b(?:en|sur) un ton\b|\ben tono\b|\bcon (?:un )?tono\b|\bin een \w+ toon\b|"
    r"\bkort en vriendelijk\b|\bkurze?n?, freundliche\b|\bréponse polie\b|\brisposta breve\b|\brespuesta breve\b|"
    r"\btwo-line\b|\bone-line\b|\bkeep it (?:short|under|brief)\b)"
)
_HEADING = (rf"(?im:^{_H}*#{{2,}}{_H}*(?:response|input|context|output|examples?|antwort|réponse|respuesta|"
            r"risposta|antwoord)\b)")

_PROMPT_STRONG = linear("|".join((
    r"<\|(?:im_start|im_end|system|user|assistant|begin_of_text|start_header_id|end_header_id|eot_id)\|>",
    r"\[INST\]|<<SYS>>|\[/INST\]",
    r"(?i:</?(?:system|system_prompt|instructions?|assistant)>)",
    rf"(?im:^{_H}*#{{2,}}{_H}*(?:instruction|instructions|system prompt|system|anweisung|anweisungen|"
    r"consigne|consignes|instrucciones|istruzioni|instructies)\b)",
    r"(?i:\bignore (?:all )?(?:the )?(?:previous|prior|above) (?:instructions|prompts?)\b)",
    _ROLE_PREAMBLE,
)))
_PROMPT_WEAK: tuple[Pattern, ...] = tuple(linear(p) for p in (
    _ANY_PREAMBLE + "|" + _ACT_AS,
    _TEMPLATE,
    _ROLE_LINE,
    _HEADING,
    _OPENING,
    _CONSTRAINTS,
))
_PROMPT_WEAK_FOUND = tuple(finder(p) for p in _PROMPT_WEAK)
_INSTRUCTION_SPANS = spans(linear(_INSTRUCTIONS))
"""Prompt instructions: each distinct one is a weak marker ("Your task is to ... Respond only in JSON")."""
_PROMPT_STRONG_FOUND = finder(_PROMPT_STRONG)

# What the screen looks for: the start of any marker above (a superset, cheaper than the markers).
_PROMPT_HINTS = (
    b"you are", b"you're", b"du bist", b"sie sind", b"ihr seid", b"tu es", b"vous \xc3\xaates", b"eres", b"usted es",
    b"sei ", b"siete", b"je bent", b"jij bent", b"u bent", b"lei \xc3\xa8",
    b"{{", b"{$", b"${", b"<<", b"{%", b"##", b"<|", b"[inst]", b"[/inst]", b"<system", b"</system", b"<instruction",
    b"</instruction", b"<assistant", b"</assistant", b"system", b"user", b"assistant", b"human:", b"ai:", b"bot:",
    b"nutzer", b"utilisateur", b"usuario", b"utente", b"gebruiker", b"assistent", b"asistente", b"syst\xc3\xa8me",
    b"sistema", b"systeem", b"ignore", b"act as", b"pretend", b"role", b"agis", b"act\xc3\xbaa", b"agisci",
    b"gedraag", b"handle als", b"fungiere", b"verhalte", b"your task", b"your job", b"your goal", b"you will",
    b"given the following", b"respond", b"answer", b"reply", b"write", b"output", b"summari", b"translate",
    b"classify", b"rewrite", b"extract", b"do not", b"step", b"think", b"aufgabe", b"antworte", b"fasse",
    b"\xc3\xbcbersetze", b"t\xc3\xa2che", b"r\xc3\xa9pond", b"r\xc3\xa9sum", b"tarea", b"responde", b"resume",
    b"compito", b"rispondi", b"riassumi", b"taak", b"antwoord", b"vat ",
    b"{", b"input", b"output", b"eingabe", b"ausgabe", b"entr\xc3\xa9e", b"sortie", b"entrada", b"salida", b"ingresso",
    b"uscita", b"invoer", b"uitvoer", b"draft", b"generat", b"compose", b"explain", b"formul", b"nenne", b"schreib",
    b"erstelle", b"klassifiz", b"beantwort", b"verfass", b"r\xc3\xa9dige", b"traduis", b"\xc3\xa9cris", b"classe",
    b"g\xc3\xa9n\xc3\xa8re", b"redacta", b"traduce", b"escribe", b"clasifica", b"genera", b"scrivi", b"traduci",
    b"redigi", b"classifica", b"comportati", b"schrijf", b"vertaal", b"classificeer", b"genereer", b"tone", b"toon",
    b"ton ", b"tono", b"bullet", b"words", b"two-line", b"one-line", b"keep it",
)


class PromptDetector(BaseDetector):
    """Text that looks like an LLM prompt template: one strong marker or two different weak ones
    (see the module docstring); one polite "you are a great team" is not a prompt."""

    name = "prompt"
    category = Category.PROPRIETARY_PROMPT
    min_length = 6  # [INST]
    timestamp_clean = True
    screen_pattern = "(?i:" + "|".join(re2.escape(h.decode("utf-8")) for h in _PROMPT_HINTS) + ")"

    def match(self, data: bytes) -> bool:
        if _PROMPT_STRONG_FOUND(data):
            return True
        hits = 0
        for found in _PROMPT_WEAK_FOUND:
            if found(data):
                hits += 1
                if hits == 2:
                    return True
        seen: set[bytes] = set()
        for start, end in _INSTRUCTION_SPANS(data):
            phrase = data[start:end].lower()
            if phrase not in seen:
                seen.add(phrase)
                hits += 1
                if hits == 2:
                    return True
        return False


# -- nested values ---------------------------------------------------------------------------------

_ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})
_PROMPT_KEYS = frozenset({"systemprompt", "prompt", "prompttemplate", "systemmessage", "instructions"})


def prompt_pair(key: str, value: Any) -> bool:
    """A chat message or a prompt setting in a nested value: ``{"role": "system", ...}``, or a
    ``system_prompt`` / ``prompt`` / ``instructions`` key holding text of 10 or more characters."""
    folded = key.lower().replace("_", "").replace("-", "")
    if folded == "role":
        return isinstance(value, str) and value.lower() in _ROLES
    return folded in _PROMPT_KEYS and isinstance(value, str) and len(value.strip()) >= 10


# -- prompt-field names ------------------------------------------------------------------------

DEFAULT_PROMPT_FIELD_PATTERN = (
    r"\b(?:prompts?|system message|(?:ai|llm|gpt|genai|bot|agent|copilot|assistant) "
    r"(?:instructions?|persona|system message))\b"
)
"""Matched against a field name's words, lower case and space-separated (``SystemPrompt__c`` ->
``system prompt c``, ``AI_Instructions__c`` -> ``ai instructions c``). ``PromptPayment`` (a finance
term) is left out by :func:`prompt_field_name`."""

_NOT_PROMPT_WORDS = linear(r"\bprompt (?:payment|pay|discount|delivery|reply|response|shipping)\b")


def prompt_field_name(words: str, pattern: Pattern) -> bool:
    """True when a field whose name has these ``words`` (``name_words`` joined by spaces) carries
    prompts by the configured ``pattern``; "prompt payment"-style business terms do not."""
    return pattern.search(words.encode()) is not None and _NOT_PROMPT_WORDS.search(words.encode()) is None

"""Prompt templates for generative answers: Jinja files in `prompts/`, checked when loaded.

A template that is missing, does not parse, or lacks a variable the answer needs stops the service at
startup with a message naming the file, not at the first question.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, StrictUndefined, Template, TemplateSyntaxError, meta

from qa_service.errors import QAServiceError

REQUIRED = {
    "answer_system.jinja": {"max_sentences"},
    "answer_user.jinja": {"sources", "question"},
}


class PromptTemplateError(QAServiceError):
    code = "prompt_template_invalid"


@dataclass(frozen=True)
class Prompts:
    system: Template
    user: Template

    def render(self, question: str, sources: str, max_sentences: int) -> tuple[str, str]:
        return self.system.render(max_sentences=max_sentences), self.user.render(question=question, sources=sources)


def load_prompts(directory: Path) -> Prompts:
    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    templates: dict[str, Template] = {}
    for name, required in REQUIRED.items():
        path = directory / name
        if not path.is_file():
            raise PromptTemplateError(f"Prompt template {path} is missing (QA_PROMPTS_DIR={directory}).")
        source = path.read_text(encoding="utf-8")
        try:
            used = meta.find_undeclared_variables(env.parse(source))
        except TemplateSyntaxError as exc:
            raise PromptTemplateError(f"Prompt template {path} line {exc.lineno}: {exc.message}") from exc
        if missing := required - used:
            raise PromptTemplateError(f"Prompt template {path} must use {', '.join(sorted(missing))}.")
        if unknown := used - required:
            raise PromptTemplateError(
                f"Prompt template {path} uses {', '.join(sorted(unknown))}; available: {', '.join(sorted(required))}."
            )
        templates[name] = env.from_string(source)
    return Prompts(templates["answer_system.jinja"], templates["answer_user.jinja"])

"""How a model proposes tool calls: one adapter per protocol, all answering a :class:`Reply`.

- :class:`GrammarCaller`: the model writes ``{"calls": [{"tool": ..., <argument>: ...}]}``
  under a JSON-schema grammar with the tool names as constants (a model with
  ``generate_json``: llama.cpp, or the scripted fakes). The local Qwen2.5-Coder does not emit
  native ``tool_calls`` (README, "The offline-llm preset"), but under the grammar its calls parse.
- :class:`NativeCaller`: OpenAI-style ``tools`` and ``tool_calls`` (a model with
  ``chat_tools``: an OpenAI-compatible server such as vLLM, SGLang, llama.cpp server, Ollama).
- :class:`TemplateCaller`: a transformers model whose chat template takes ``tools=``; calls are
  read from ``<tool_call>{...}</tool_call>`` blocks (the Hermes/Qwen convention).

``caller_for(model, prompt)`` picks one from what the model can do, or None.
Adapters only parse; the consult loop validates names and arguments (pydantic).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:8]


@dataclass
class Proposed:
    """One call as the model wrote it."""

    name: str
    arguments: dict
    id: str = field(default_factory=new_call_id)
    error: str | None = None


@dataclass
class Reply:
    raw: str
    calls: list[Proposed] = field(default_factory=list)
    error: str | None = None  # the reply as a whole did not parse
    tokens: int = 0


def _tokens(model, text: str) -> int:
    last = getattr(model, "last", None)
    n = getattr(last, "completion_tokens", 0) if last is not None else 0
    return int(n) or max(1, len(text) // 4)


def _tool_schema(tool) -> dict:
    """The JSON schema of one tool's arguments, with the enum a tool declares in its metadata."""
    schema = tool.args_schema.model_json_schema()
    props = {k: {kk: vv for kk, vv in v.items() if kk in ("type", "maxLength", "enum")}
             for k, v in schema.get("properties", {}).items()}
    for name, values in ((tool.metadata or {}).get("enum") or {}).items():
        props[name] = {"type": "string", "enum": list(values)}
    return {"properties": props, "required": list(schema.get("required", list(props)))}


class GrammarCaller:
    protocol = "json-grammar"

    def __init__(self, model, prompt):
        self.model = model
        self.prompt = prompt
        self.reply_shape = prompt.part("reply_shape_json")

    def schema(self, tools, max_calls: int) -> dict:
        items = []
        for t in tools:
            s = _tool_schema(t)
            items.append({
                "type": "object",
                "properties": {"tool": {"type": "string", "enum": [t.name]}, **s["properties"]},
                "required": ["tool", *s["required"]],
                "additionalProperties": False,
            })
        return {
            "type": "object",
            "properties": {"calls": {"type": "array", "items": {"anyOf": items}, "maxItems": max_calls}},
            "required": ["calls"],
            "additionalProperties": False,
        }

    def render(self, messages: list[BaseMessage]) -> list[dict]:
        """LangChain messages -> plain chat turns: the model's JSON as assistant turns, each
        round's tool results as one user turn."""
        out: list[dict] = []
        results: list[str] = []

        def flush():
            if results:
                out.append({"role": "user", "content": self.prompt.part("results", results="\n".join(results))})
                results.clear()

        for m in messages:
            if isinstance(m, ToolMessage):
                arg = getattr(m.artifact, "argument", "")
                results.append(f"{m.name}({arg!r}): {m.content}")
                continue
            flush()
            if isinstance(m, SystemMessage):
                out.append({"role": "system", "content": m.content})
            elif isinstance(m, AIMessage):
                out.append({"role": "assistant", "content": m.content})
            elif isinstance(m, HumanMessage):
                out.append({"role": "user", "content": m.content})
        flush()
        return out

    def propose(self, messages: list[BaseMessage], tools, *, max_calls: int, max_new_tokens: int) -> Reply:
        text = self.model.generate_json(self.render(messages), self.schema(tools, max_calls),
                                        name="calls", max_new_tokens=max_new_tokens)
        return parse_calls_json(text, tokens=_tokens(self.model, text))


def parse_calls_json(text: str, *, tokens: int = 0) -> Reply:
    """``{"calls": [{"tool": name, <arg>: value}, ...]}`` -> Reply (a parse error is kept)."""
    raw = text.strip()
    try:
        data = json.loads(raw)
    except ValueError as e:
        return Reply(raw=raw, error=f"not JSON ({e.msg} at character {e.pos})", tokens=tokens)
    if not isinstance(data, dict) or not isinstance(data.get("calls"), list):
        return Reply(raw=raw, error='expected an object {"calls": [...]}', tokens=tokens)
    calls = []
    for item in data["calls"]:
        if not isinstance(item, dict):
            calls.append(Proposed(name="?", arguments={"value": item}, error="a call must be an object"))
            continue
        name = str(item.get("tool", item.get("name", "")))
        args = item.get("arguments") if isinstance(item.get("arguments"), dict) else {
            k: v for k, v in item.items() if k not in ("tool", "name")}
        calls.append(Proposed(name=name, arguments=args))
    return Reply(raw=raw, calls=calls, tokens=tokens)


def openai_tools(tools) -> list[dict]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    out = []
    for t in tools:
        spec = convert_to_openai_tool(t)
        for name, values in ((t.metadata or {}).get("enum") or {}).items():
            spec["function"]["parameters"]["properties"][name]["enum"] = list(values)
        out.append(spec)
    return out


def _parse_arguments(name: str, call_id: str, arguments: Any) -> Proposed:
    if isinstance(arguments, dict):
        return Proposed(name=name, arguments=arguments, id=call_id)
    try:
        args = json.loads(arguments or "{}")
    except (TypeError, ValueError) as e:
        return Proposed(name=name, arguments={"raw": str(arguments)}, id=call_id, error=f"arguments are not JSON ({e})")
    if not isinstance(args, dict):
        return Proposed(name=name, arguments={"raw": args}, id=call_id, error="arguments must be a JSON object")
    return Proposed(name=name, arguments=args, id=call_id)


class NativeCaller:
    protocol = "native-tools"

    def __init__(self, model, prompt):
        self.model = model
        self.prompt = prompt
        self.reply_shape = prompt.part("reply_shape_native")

    def propose(self, messages: list[BaseMessage], tools, *, max_calls: int, max_new_tokens: int) -> Reply:
        from langchain_core.messages import convert_to_openai_messages

        msg = self.model.chat_tools(convert_to_openai_messages(messages), openai_tools(tools),
                                    max_new_tokens=max_new_tokens)
        content = (msg.get("content") or "").strip()
        calls = []
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") or {}
            calls.append(_parse_arguments(str(fn.get("name", "")), tc.get("id") or new_call_id(), fn.get("arguments")))
        raw = content or json.dumps([{"name": c.name, "arguments": c.arguments} for c in calls])
        return Reply(raw=raw, calls=calls, tokens=_tokens(self.model, raw))


_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def parse_template_calls(text: str, *, tokens: int = 0) -> Reply:
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks -> Reply. Text with
    no block is an answer without calls; a block that does not parse is a parse error."""
    blocks = _TOOL_CALL.findall(text)
    calls = []
    for b in blocks:
        try:
            data = json.loads(b)
        except ValueError as e:
            return Reply(raw=text, error=f"a <tool_call> block is not JSON ({e.msg})", tokens=tokens)
        if not isinstance(data, dict):
            return Reply(raw=text, error="a <tool_call> block must hold an object", tokens=tokens)
        calls.append(_parse_arguments(str(data.get("name", "")), new_call_id(), data.get("arguments", {})))
    return Reply(raw=text.strip(), calls=calls, tokens=tokens)


class TemplateCaller:
    protocol = "chat-template-tools"

    def __init__(self, model, prompt):
        self.model = model
        self.prompt = prompt
        self.reply_shape = prompt.part("reply_shape_native")

    def render(self, messages: list[BaseMessage]) -> list[dict]:
        from langchain_core.messages import convert_to_openai_messages

        out = convert_to_openai_messages(messages)
        for m in out:  # HF chat templates take arguments as a mapping
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function", {})
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except ValueError:
                        pass
        return out

    def propose(self, messages: list[BaseMessage], tools, *, max_calls: int, max_new_tokens: int) -> Reply:
        text = self.model.generate(self.render(messages), tools=openai_tools(tools), max_new_tokens=max_new_tokens)
        return parse_template_calls(text, tokens=_tokens(self.model, text))


def caller_for(model, prompt):
    """The adapter for what ``model`` can do, or None when it cannot call tools."""
    if model is None:
        return None
    if callable(getattr(model, "generate_json", None)):
        return GrammarCaller(model, prompt)
    if callable(getattr(model, "chat_tools", None)):
        return NativeCaller(model, prompt)
    if getattr(model, "supports_tools", False):
        return TemplateCaller(model, prompt)
    return None


__all__ = ["Proposed", "Reply", "GrammarCaller", "NativeCaller", "TemplateCaller", "caller_for",
           "parse_calls_json", "parse_template_calls", "openai_tools"]

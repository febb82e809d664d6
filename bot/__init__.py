"""The inbound conversation agent: a LangGraph graph that answers a customer, collects their phone,
scores their intent with evidence and sets the lead's status; plus its admin-editable prompts."""

from bot.prompts import PromptConfig, PromptError, load_prompts

__all__ = ["PromptConfig", "PromptError", "load_prompts"]

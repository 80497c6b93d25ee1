"""Product recommendation from the tenant's catalogue.

In this version it answers through the model under its system prompt; the
catalogue-backed recommender (collaborative + content, with chat constraints)
builds on this contract.
"""

from ..base import Skill

__all__ = ["skill"]

SYSTEM_PROMPT = (
    "You recommend products from the shop's catalogue. Ask what the customer needs, their "
    "budget and who it is for, then suggest a few items and say briefly why each fits."
)

EXAMPLES = [
    "Can you recommend a gift for my mum?",
    "I'm looking for a present under 20 pounds",
    "What should I buy for a 5 year old's birthday?",
    "Show me something similar to the blue mug",
    "I need new running shoes, what do you suggest?",
    "Any ideas for a housewarming gift?",
    "What are your best selling candles?",
    "I want a cheaper alternative to this lamp",
    "Suggest some Christmas decorations",
    "What goes well with the cushion I bought?",
    "I'm looking for a waterproof jacket for hiking",
    "Recommend a laptop bag that fits 15 inches",
    "what's a good gift for someone who loves gardening",
    "Show me more items like the ones in my basket",
    "I need a kitchen gadget for a friend who likes baking",
    "Do you have something in red instead?",
    "Not that one, something more modern",
    "I want a toy for a toddler, nothing with small parts",
    "Which headphones would you recommend for the gym?",
    "I'm decorating my living room, what would suit it?",
    "Find me a vintage style clock",
    "What can I get my dad for father's day?",
    "Any stocking fillers under 5 pounds?",
    "I liked the tea set, what else might I like?",
    "Help me choose a wedding present",
    "I want something eco-friendly for the bathroom",
    "Which of your bags is best for travel?",
    "show me popular items this week",
    "I need party supplies for a kids' party",
    "recommend a book for a teenager",
    "What would go with a navy dress?",
    "I'm after a nice notebook for work",
    "Looking for a present for my girlfriend, budget around 50",
    "Can you suggest matching plates and bowls?",
    "Something for a new baby, please",
]

skill = Skill(
    name="recommendation",
    description="Recommends products from the shop's catalogue within the customer's constraints.",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
)

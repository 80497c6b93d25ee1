"""Customer service: questions about the tenant's products, orders, accounts and payments.

In this version it answers through the model under its system prompt; grounded
answers with citations and human handoff build on this contract.
"""

from ..base import Skill

__all__ = ["skill"]

SYSTEM_PROMPT = (
    "You are the customer-service assistant of an online business. Answer the customer's "
    "question politely and briefly. If you are not sure of a policy, price or date, say so "
    "and offer to connect them with a human agent. Never invent account details."
)

EXAMPLES = [
    "Where is my order? It was supposed to arrive yesterday.",
    "I want to return the shoes I bought last week",
    "How do I get a refund for a damaged item?",
    "My package says delivered but I never got it",
    "Can I change the delivery address on my order?",
    "I was charged twice for the same purchase",
    "How do I cancel my subscription?",
    "I forgot my password and can't log in",
    "How can I update the email address on my account?",
    "My card payment keeps getting declined at checkout",
    "Why is there a pending transaction on my account?",
    "I sent a transfer yesterday and it still hasn't arrived",
    "How long does a bank transfer take to show up?",
    "My card was stolen, please block it",
    "I lost my card, how do I get a new one?",
    "How do I top up my account balance?",
    "The top-up failed but the money left my bank",
    "I need to reset my PIN",
    "Which currencies can I hold in my account?",
    "What fees do you charge for withdrawing cash abroad?",
    "Why did I get charged a fee for this payment?",
    "How do I verify my identity on the app?",
    "The app won't let me add my new phone number",
    "Can I speak to a human agent please?",
    "The item I received is not what I ordered",
    "Do you ship to Canada and how much does it cost?",
    "What is your return policy?",
    "How do I close my account?",
    "I didn't recognise a payment on my statement",
    "My discount code isn't working",
    "When will my refund reach my card?",
    "How do I download an invoice for my order?",
    "I'd like to change my billing details",
    "The exchange rate I got was wrong",
    "My account has been frozen, why?",
    "Can I get a virtual card?",
    "How do I set up a direct debit?",
    "I want to complain about the service I received",
    "Is my order eligible for free shipping?",
    "How do I track my parcel?",
    "my new card still hasn't arrived",
    "the cash machine gave me less money than I asked for",
    "contactless isn't working on my card",
    "can I add my card to Apple Pay or Google Pay?",
    "a merchant refunded me but I can't see the money",
    "why was my identity verification rejected?",
    "I need to change my home address on my account",
    "is there a limit on how much I can top up?",
    "how do I activate my card?",
    "I paid the wrong person by mistake",
    "my salary payment hasn't come in",
    "someone used my card without permission",
    "the app says my transfer was declined",
    "can I order a physical card as well as a virtual one?",
    "I got the wrong size, can I exchange it?",
]

skill = Skill(
    name="customer_service",
    description="Answers questions about orders, deliveries, returns, accounts, cards and payments.",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
    collection="help_centre",
)

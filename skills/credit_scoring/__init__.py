"""Credit scoring: loan and credit applications, eligibility and the reasons behind a decision.

In this version it answers through the model under its system prompt; the
trained scoring model, reason codes and audit log build on this contract.
"""

from ..base import Skill

__all__ = ["skill"]

SYSTEM_PROMPT = (
    "You help customers apply for credit. Collect the applicant's details one question at a "
    "time: amount, purpose, duration, income, employment and existing debts. Do not promise "
    "approval; the decision is made by the lender's scoring model."
)

EXAMPLES = [
    "I want to apply for a loan",
    "Can I borrow 5000 pounds to buy a car?",
    "Would I be approved for a personal loan?",
    "What credit limit could I get?",
    "How much can I borrow with my salary?",
    "I'd like to apply for a mortgage",
    "Am I eligible for financing on a new kitchen?",
    "My loan application was rejected, why?",
    "What affects my chances of getting credit?",
    "I need a loan of 12000 over 3 years",
    "Can I get a loan if I'm self-employed?",
    "How is my credit score calculated?",
    "What would improve my chances of approval?",
    "I want to finance a used car with monthly payments",
    "Can I get credit with a low income?",
    "Do I qualify for a loan with existing debts?",
    "I need to borrow money to consolidate my debts",
    "What interest rate would I get on a loan?",
    "Can you check if I'm creditworthy?",
    "I want to increase my credit limit",
    "Apply for a business loan of 20k",
    "how long does a loan decision take",
    "I have bad credit history, can I still borrow?",
    "I'm a student, can I get a small loan?",
    "What documents do I need for a loan application?",
    "Can I pay for this in instalments on credit?",
    "Is my application likely to be accepted?",
    "I'd like to take out a loan for my wedding",
    "How much would I repay each month on a 10000 loan?",
    "I want a credit assessment",
    "Will missing a payment last year affect my loan application?",
    "Can I borrow against my salary until payday?",
    "I need 3000 for home repairs, can you lend it?",
    "What's the maximum loan amount for someone earning 30k?",
    "Why was my credit application declined?",
]

skill = Skill(
    name="credit_scoring",
    description="Takes loan and credit applications and explains the scoring model's decision.",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
)

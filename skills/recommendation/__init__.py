"""Product recommendation from the tenant's sales history and catalogue.

A tenant trains its recommender with ``lepton recommend train`` (:mod:`.model`:
co-purchases, repeat purchases and title similarity, ranked by a model learned
from its own data). In a conversation the skill suggests catalogue items for the
signed-in customer (the request's ``user``, sent by the integrator's server) or
from what the customer asks for, and keeps the constraints across turns
(:mod:`.conversation`): a price limit ("under 20 pounds", "cheaper"), "not that
one", "the second one", "something like the first one". Each item is shown with
its title, price and the signal behind it; nothing outside the catalogue is ever
suggested, and the text is fixed, not generated. The items are in
``lepton.recommendations``. Integrators get the same from
``POST /v1/skills/recommendation/recommend``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from ..base import ActionCall, Skill, SkillAction, SkillContext, SkillEnv, SkillReply
from .conversation import Request, parse_request, render
from .model import ModelStore, Recommender

__all__ = ["skill", "RecommendationSkill", "NO_MODEL_REPLY", "DATA"]

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

NO_MODEL_REPLY = ("This shop has not set up product recommendations here yet, so I can't suggest items from its "
                  "catalogue. Would you like me to connect you with a person?")
DATA = Path(__file__).parent / "data"
SHOWN = 5


class RecommendationSkill(Skill):
    def setup(self, env: SkillEnv) -> None:
        """Options: ``currency`` (text before prices, default "£"), ``shown`` (items per reply, 1-10)."""
        super().setup(env)
        self._stores: dict[str, ModelStore] = {}
        self.currency = str(env.options.get("currency", "£"))
        self.shown = env.options.get("shown", SHOWN)
        if not isinstance(self.shown, int) or not 1 <= self.shown <= 10:
            raise ValueError(f"option shown must be a whole number from 1 to 10, not {self.shown!r}")

    def store(self, env: SkillEnv, tenant_id: str) -> ModelStore:
        found = self._stores.get(tenant_id)
        if found is None:
            found = self._stores[tenant_id] = ModelStore(env.tenant_dir(tenant_id))
        return found

    def embed(self, text: str):  # noqa: ANN201
        """The text's normalised sentence embedding (the model the titles were embedded with)."""
        from retrieval.embeddings import load_encoder  # one encoder per process, loaded on first use

        return load_encoder().encode([text], normalize_embeddings=True, show_progress_bar=False)[0]

    def respond(self, ctx: SkillContext) -> SkillReply:
        model = self.store(ctx.env, ctx.tenant_id).load()
        if model is None:
            ctx.say(NO_MODEL_REPLY)
            return SkillReply(NO_MODEL_REPLY, {"recommendations": []}, declined=True, state={})
        state = dict(ctx.state) if ctx.state.get("model") == model.version else {}
        request = parse_request(ctx.user_message, state, model)
        suggestions = self.suggest(self.store(ctx.env, ctx.tenant_id), model, request, ctx.user_id)
        text = render(request, suggestions, model, self.currency)
        ctx.say(text)
        shown = [s.item for s in suggestions]
        new_state = {**request.to_state(), "model": model.version, "shown": shown or state.get("shown", [])}
        return SkillReply(text, {"recommendations": [_entry(s) for s in suggestions],
                                 "recommendation_constraints": request.constraints()}, state=new_state)

    def search(self, store: ModelStore, model: Recommender, query: str | None, max_price: float | None,
               min_price: float | None) -> dict[str, float] | None:
        """The catalogue items the vector store finds for ``query`` within the price limits."""
        if not query:
            return None
        return store.catalog(model).search(self.embed(query), max_price=max_price, min_price=min_price)

    def suggest(self, store: ModelStore, model: Recommender, request: Request, user: str | None) -> list:
        if request.focus is not None and not request.wants_more:
            return [model.describe(request.focus, "you picked it")]
        matches = self.search(store, model, request.query, request.max_price, request.min_price)
        return model.recommend(user, k=self.shown, matches=matches, like=request.like, exclude=request.exclude,
                               max_price=request.max_price, min_price=request.min_price)

    # -- integrators' JSON -----------------------------------------------------------
    def actions(self) -> list[SkillAction]:
        return [SkillAction("recommend", RecommendInput, RecommendOutput, self._recommend_action,
                            "Catalogue items for a customer and/or a described need, within price limits.")]

    def _recommend_action(self, call: ActionCall, body: "RecommendInput") -> "RecommendOutput":
        store = self.store(call.env, call.tenant_id)
        model = store.load()
        if model is None:
            raise ValueError("this tenant has no recommender; train one with `lepton recommend train`")
        unknown = sorted(set(body.like) - set(model.index))
        if unknown:
            raise ValueError(f"items not in the catalogue: {', '.join(unknown[:10])}")
        matches = self.search(store, model, body.query, body.max_price, body.min_price)
        found = model.recommend(body.user, k=body.k, matches=matches, like=body.like, exclude=body.exclude,
                                max_price=body.max_price, min_price=body.min_price)
        return RecommendOutput(model=model.version, known_user=body.user in model.history.users if body.user else False,
                               recommendations=[Item(**_entry(s)) for s in found])

    # -- commands and the demo ---------------------------------------------------------
    def commands(self):  # noqa: ANN201 - click.Group
        from .cli import recommend_commands

        return recommend_commands(self)

    def prepare_demo(self, env: SkillEnv, progress: Callable[[str], None] | None = None) -> bool:
        """Train the default tenant's recommender on the bundled Online Retail slice, once."""
        from .data import derive_catalog, load_interactions
        from .model import train_recommender

        store = self.store(env, env.default_tenant)
        if store.card() is not None:
            return False
        if progress:
            progress("Training the demo recommender on the bundled Online Retail slice (once)...")
        cleaned = load_interactions(DATA / "online_retail_slice.csv.gz")
        model = train_recommender(cleaned.frame, derive_catalog(cleaned.frame),
                                  source="bundled: UCI Online Retail slice (CC BY 4.0)")
        model.version = model.card["version"] = "demo-online-retail"
        model.card["cleaning"] = cleaned.report
        store.save(model)
        return True


def _entry(s) -> dict[str, Any]:  # noqa: ANN001 - model.Suggestion
    return {"id": s.item, "title": s.title, "price": s.price, "reason": s.reason}


class RecommendInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(default=None, description="The customer's id as in the sales export (history-based).")
    query: str | None = Field(default=None, max_length=2000, description="What the customer is looking for.")
    like: list[str] = Field(default_factory=list, description="Item ids the suggestions should resemble.")
    exclude: list[str] = Field(default_factory=list, description="Item ids never to suggest.")
    max_price: float | None = Field(default=None, ge=0)
    min_price: float | None = Field(default=None, ge=0)
    k: int = Field(default=5, ge=1, le=50)


class Item(BaseModel):
    id: str
    title: str
    price: float | None
    reason: str = Field(description="The signal behind the suggestion: bought before, bought with, similar to, popular.")


class RecommendOutput(BaseModel):
    model: str
    known_user: bool = Field(description="Whether the customer's history was used.")
    recommendations: list[Item]


skill = RecommendationSkill(
    name="recommendation",
    description="Recommends products from the shop's catalogue within the customer's constraints.",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
)

"""The model registry and the cascade configuration's versions: register, activate, roll back,
and change the settings an admin tunes."""

from __future__ import annotations

import json
import math

from django.db import transaction

from ..models import CascadeConfig, ModelVersion, Policy
from .audit import record_audit
from .validation import MAX_CAPTION_CHARS, ActionError, check_text


DEFAULT_MLLM_BUDGET = 0.2  # a fifth of traffic: above the demo policy's share of hard cases
# The settings of a cascade configuration an admin tunes; a new version starts from the current ones.
CONFIG_SETTINGS = ("entropy_threshold", "mllm_budget", "allow_below", "action_above", "audit_rate",
                   "promotion_margin", "retrain_min_labels", "stage2_decides")


# Where each kind's saved artifact names the labels it predicts (BaselineClassifier.save,
# the stage-2 classes' save): read as JSON, so checking a policy never loads a model.
LABELS_FILE = {ModelVersion.Kind.BASELINE: "baseline.json", ModelVersion.Kind.MLLM: "config.json"}


def model_labels(version: ModelVersion) -> tuple[str, ...]:
    """The labels a model version predicts; ActionError when its artifact cannot be read."""
    path = version.folder / LABELS_FILE[version.kind]
    try:
        return tuple(json.loads(path.read_text())["labels"])
    except (OSError, ValueError, KeyError) as error:
        raise ActionError(f"The labels of {version} cannot be read from {path} ({type(error).__name__}).",
                          code="model_unreadable") from None


def check_labels_known(policy: Policy, labels) -> None:
    """A label the active models do not predict would reach reviewers and then every retraining,
    which cannot learn a class its model does not have: refuse it until models that know it are
    trained and active."""
    active = ModelVersion.objects.filter(policy=policy, status=ModelVersion.Status.ACTIVE).order_by("kind")
    for version in active:
        known = model_labels(version)
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ActionError(
                f"{', '.join(repr(label) for label in unknown)} is not a label the active {version} predicts (it knows "
                f"{', '.join(known)}): train and activate models with it first, then add it to the policy.",
                code="label_unknown_to_models")


def do_register_model(policy: Policy, *, kind: str, version: str, artifact_path: str, config: dict,
                      metrics: dict) -> ModelVersion:
    """Record a trained artifact as a candidate the pipeline can load."""
    if kind not in ModelVersion.Kind.values:
        raise ActionError(f"Unknown model kind {kind!r}.", code="unknown_model_kind")
    if ModelVersion.objects.filter(policy=policy, kind=kind, version=version).exists():
        raise ActionError(f"{kind} version {version!r} already exists.", code="duplicate_model_version")
    return ModelVersion.objects.create(policy=policy, kind=kind, version=version, artifact_path=artifact_path,
                                       config=config, metrics=metrics)


def do_set_reference_entropies(version: ModelVersion, entropies) -> None:
    """A baseline's entropies on videos it never trained on: the router's history for it until it
    has scored enough videos itself (scoring.current_threshold)."""
    if version.kind != ModelVersion.Kind.BASELINE:
        raise ActionError(f"{version} is not a baseline; only a baseline's entropies route.", code="not_a_baseline")
    values = [float(e) for e in entropies]
    if not all(math.isfinite(e) and e >= 0 for e in values):
        raise ActionError("Entropies must be finite and 0 or more (nats).", code="bad_entropies")
    ModelVersion.objects.filter(pk=version.pk).update(reference_entropies=values)
    version.reference_entropies = values


def do_activate_models(policy: Policy, *, baseline: ModelVersion | None = None, mllm: ModelVersion | None = None,
                       stage2_decides: bool | None = None, actor=None, note: str = "") -> CascadeConfig:
    """Make these model versions active: a new cascade configuration version that keeps every other
    setting of the current one (and sets stage2_decides when given: whether the stage 2 these
    models make up earned its routed videos). The versions they replace are retired, not deleted."""
    versions = [version for version in (baseline, mllm) if version is not None]
    changes = {f"{version.kind}_version": version for version in versions}
    if stage2_decides is not None:
        changes["stage2_decides"] = stage2_decides
    with transaction.atomic():
        config = do_change_cascade_config(policy, actor=actor, note=note, **changes)
        for version in versions:
            ModelVersion.objects.filter(policy=policy, kind=version.kind, status=ModelVersion.Status.ACTIVE).exclude(
                pk=version.pk).update(status=ModelVersion.Status.RETIRED)
            ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.ACTIVE)
            record_audit(actor, "model_version.activated", version, f"{version} is active in {config}"
                         + (f" ({note})" if note else "") + ".")
    return config


def do_roll_back_model(version: ModelVersion, *, actor=None) -> CascadeConfig:
    """Reactivate the version of this kind that was active before `version` became active, with
    the stage2_decides of the configuration it was active in."""
    if version.status != ModelVersion.Status.ACTIVE:
        raise ActionError(f"{version} is not active; only the active version can be rolled back.", code="not_active")
    field = f"{version.kind}_version"
    configs = CascadeConfig.objects.filter(policy_id=version.policy_id).order_by("version")
    first_use = configs.filter(**{field: version}).values_list("version", flat=True).first()
    previous = (configs.filter(version__lt=first_use).exclude(**{field: version}).exclude(**{f"{field}__isnull": True})
                .order_by("-version").first()) if first_use is not None else None
    if previous is None:
        raise ActionError(f"No {version.kind} version was active before {version}.", code="nothing_to_roll_back")
    restored = getattr(previous, field)
    # Whether stage 2 decided routed videos was judged for the models of that time.
    return do_activate_models(version.policy, actor=actor, note=f"Rolled back {version} to {restored}",
                              stage2_decides=previous.stage2_decides, **{version.kind: restored})


def check_cascade_settings(*, entropy_threshold, mllm_budget, allow_below, action_above, audit_rate,
                           promotion_margin, retrain_min_labels, **_ignored) -> None:
    """Refuse nonsense before it reaches the router, in words an admin can act on."""
    def fraction(name: str, value) -> None:
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
            raise ActionError(f"{name} must be a fraction between 0 and 1, got {value!r}.", code=f"bad_{name}")

    if (entropy_threshold is None) == (mllm_budget is None):
        raise ActionError("Set either an entropy threshold or an MLLM budget, not both and not neither.",
                          code="threshold_or_budget")
    if entropy_threshold is not None and not (math.isfinite(entropy_threshold) and entropy_threshold >= 0):
        raise ActionError(f"The entropy threshold must be 0 or more (nats), got {entropy_threshold!r}.",
                          code="bad_entropy_threshold")
    for name, value in (("mllm_budget", mllm_budget), ("allow_below", allow_below), ("action_above", action_above),
                        ("audit_rate", audit_rate)):
        fraction(name, value)
    if allow_below > action_above:
        raise ActionError(f"Auto-allow below {allow_below} must not be above auto-action above {action_above}: "
                          "the review band would be negative.", code="bands_out_of_order")
    if not (math.isfinite(promotion_margin) and -1 <= promotion_margin <= 1):
        raise ActionError(f"The promotion margin is an F1 difference between -1 and 1, got {promotion_margin!r}.",
                          code="bad_promotion_margin")
    if retrain_min_labels < 1:
        raise ActionError("Retraining needs at least one new label.", code="bad_retrain_min_labels")


def do_change_cascade_config(policy: Policy, *, actor, note: str, **changes) -> CascadeConfig:
    """A new active configuration version: the current settings with `changes` applied.

    Older versions stay as the history of who changed what and when; predictions keep pointing
    at the version they used.
    """
    unknown = set(changes) - set(CONFIG_SETTINGS) - {"baseline_version", "mllm_version"}
    if unknown:
        raise ActionError(f"Unknown settings: {', '.join(sorted(unknown))}.", code="unknown_setting")
    note = check_text(note, field="note", limit=MAX_CAPTION_CHARS)
    with transaction.atomic():
        current = CascadeConfig.objects.select_for_update().filter(policy=policy, is_active=True).first()
        values = {name: getattr(current, name) for name in CONFIG_SETTINGS} if current else {
            name: CascadeConfig._meta.get_field(name).get_default() for name in CONFIG_SETTINGS}
        if current is None and "entropy_threshold" not in changes:
            values["mllm_budget"] = values["mllm_budget"] or DEFAULT_MLLM_BUDGET
        values.update(baseline_version=current.baseline_version if current else None,
                      mllm_version=current.mllm_version if current else None)
        values.update(changes)
        check_cascade_settings(**values)
        for kind in ("baseline", "mllm"):
            version = values[f"{kind}_version"]
            if version is not None and (version.policy_id != policy.pk or version.kind != kind):
                raise ActionError(f"{version} is not a {kind} model of {policy}.", code="wrong_model_version")
        latest = CascadeConfig.objects.filter(policy=policy).order_by("-version").values_list("version", flat=True).first()
        if current:
            CascadeConfig.objects.filter(pk=current.pk).update(is_active=False)
        config = CascadeConfig.objects.create(policy=policy, version=(latest or 0) + 1, is_active=True,
                                              created_by=actor, change_note=note, **values)
        diff = config_changes(config)
        record_audit(actor, "cascade_config.changed", config,
                     f"{config} is active: " + (", ".join(f"{name} {old} → {new}" for name, (old, new) in diff.items())
                                                or "first version") + (f" ({note})" if note else ""),
                     changes={name: list(pair) for name, pair in diff.items()})
    return config


def config_changes(config: CascadeConfig) -> dict[str, tuple]:
    """What this version changed from the one before it: setting -> (old, new)."""
    previous = (CascadeConfig.objects.filter(policy_id=config.policy_id, version__lt=config.version)
                .order_by("-version").first())
    if previous is None:
        return {}
    names = CONFIG_SETTINGS + ("baseline_version_id", "mllm_version_id")
    return {name: (getattr(previous, name), getattr(config, name)) for name in names
            if getattr(previous, name) != getattr(config, name)}

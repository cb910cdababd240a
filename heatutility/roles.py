"""Staff roles as Django groups.

Each role is a policy over apps and actions, so models added later are covered without
touching this file.  The groups are created by a migration (``heatutility/0001``) and
kept in step after every ``migrate`` (``post_migrate``), so a new model's permissions
reach the right roles.

| role               | may change                                  | may only view        |
|--------------------|---------------------------------------------|----------------------|
| billing clerk      | customers (not networks or interface units), | networks, interface  |
|                    | billing (runs, invoices, payments)           | units, metering,     |
|                    |                                              | tariffs              |
| metering operator  | metering (meters, readings, VEE queue),      | customers, tariffs,  |
|                    | interface units                              | billing              |
| tariff manager     | tariffs, incl. approving tariff versions     | customers, metering, |
|                    |                                              | billing              |
| auditor            | nothing                                      | everything           |
"""

from __future__ import annotations

BILLING_CLERK = "billing clerk"
METERING_OPERATOR = "metering operator"
TARIFF_MANAGER = "tariff manager"
AUDITOR = "auditor"

DOMAIN_APPS = ("customers", "metering", "tariffs", "billing")
ALL = ("view", "add", "change", "delete")
WRITE = ("view", "add", "change")
VIEW = ("view",)

# role -> app label -> actions on every model of that app
ROLE_POLICY: dict[str, dict[str, tuple[str, ...]]] = {
    BILLING_CLERK: {"customers": WRITE, "billing": WRITE, "metering": VIEW, "tariffs": VIEW},
    METERING_OPERATOR: {"metering": WRITE, "customers": VIEW, "tariffs": VIEW, "billing": VIEW},
    TARIFF_MANAGER: {"tariffs": WRITE, "customers": VIEW, "metering": VIEW, "billing": VIEW},
    AUDITOR: {"customers": VIEW, "metering": VIEW, "tariffs": VIEW, "billing": VIEW},
}

# Per-model exceptions to the app policy: (app_label, model) -> actions.  Networks are
# reference data kept by administrators; clerks see them but do not create them.
# Interface units (substations) are plant, kept by the metering operator.
ROLE_MODEL_OVERRIDES: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    BILLING_CLERK: {("customers", "network"): VIEW, ("customers", "buildinginterfaceunit"): VIEW},
}

# Single model permissions granted beyond the app policy: (app_label, codename).
ROLE_EXTRA: dict[str, tuple[tuple[str, str], ...]] = {
    METERING_OPERATOR: (
        ("customers", "add_buildinginterfaceunit"),
        ("customers", "change_buildinginterfaceunit"),
    ),
    BILLING_CLERK: (),
    TARIFF_MANAGER: (("tariffs", "approve_tariffversion"),),
    AUDITOR: (),
}

# Custom permissions (Meta.permissions) that an app policy must never grant implicitly.
RESERVED_CODENAMES = {"approve_tariffversion"}


def role_permission_ids(role: str, permission_model, history_model_names=frozenset()) -> set[int]:
    """Primary keys of the permissions ``role`` should hold."""
    ids: set[int] = set()
    for app_label, actions in ROLE_POLICY[role].items():
        overrides = ROLE_MODEL_OVERRIDES.get(role, {})
        perms = permission_model.objects.filter(content_type__app_label=app_label)
        for perm in perms.select_related("content_type").only(
            "id", "codename", "content_type__model"
        ):
            action = perm.codename.split("_", 1)[0]
            if perm.codename in RESERVED_CODENAMES:
                continue
            # historical (audit) models follow the model they record
            model = perm.content_type.model.removeprefix("historical")
            if (app_label, model) in overrides:
                if action in overrides[(app_label, model)]:
                    ids.add(perm.id)
                continue
            if action in actions:
                ids.add(perm.id)
            elif action not in ("view", "add", "change", "delete") and "change" in actions:
                # custom verbs (e.g. "release_invoice") go with write access to the app
                ids.add(perm.id)
    for app_label, codename in ROLE_EXTRA[role]:
        ids.update(
            permission_model.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).values_list("id", flat=True)
        )
    return ids


def sync_roles(*, apps=None, verbosity: int = 0) -> None:
    """Create the role groups and give each the permissions its policy grants."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    registry = apps or global_apps
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=verbosity, apps=registry)
    group_model = registry.get_model("auth", "Group")
    permission_model = registry.get_model("auth", "Permission")
    for role in ROLE_POLICY:
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(role_permission_ids(role, permission_model))


def sync_roles_after_migrate(sender, **kwargs) -> None:
    sync_roles(verbosity=kwargs.get("verbosity", 0))

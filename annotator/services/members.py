"""Dataset administration for owners: members and their roles, the annotation settings page, and
the reads the management pages need (members, gold samples, accuracy on gold).

Writes are keyword-only services in transactions with an owner check first. The last owner of a
dataset can be neither removed nor demoted, and removing a member deletes nothing they wrote: their
labels, assignments and drafts stay (only their live reservations end, so the samples free up)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import rubric
from ..models import Assignment, Dataset, Membership

__all__ = ["LastOwner", "MemberError", "dataset_annotation_update", "member_invite", "member_remove", "member_role_set"]

Role = Membership.Role


class MemberError(ValueError):
    """The member change cannot be made (unknown user, unknown role, not a member). Nothing changed."""


class LastOwner(MemberError):
    """The change would leave the dataset without an owner."""


def _check_owner(*, actor: AbstractBaseUser | None, dataset: Dataset) -> None:
    from . import check_dataset_role  # the package's access check (this module is imported by it)

    if actor is not None:
        check_dataset_role(user=actor, dataset=dataset, roles=[Role.OWNER])


def _check_role_value(role: str) -> None:
    if role not in Role.values:
        raise MemberError(_("Unknown role %(role)s; choose one of %(roles)s.") % {"role": repr(role), "roles": ", ".join(Role.values)})


def _guard_last_owner(*, dataset: Dataset, user: AbstractBaseUser, new_role: str | None) -> None:
    """With the dataset row locked: refuse when `user` is an owner and would stop being one while
    no other owner is left. `new_role` None means removal."""
    if new_role == Role.OWNER:
        return
    memberships = Membership.objects.filter(dataset=dataset)
    if not memberships.filter(user=user, role=Role.OWNER).exists():
        return
    if not memberships.filter(role=Role.OWNER).exclude(user=user).exists():
        if new_role is None:
            raise LastOwner(_("%(user)s is the last owner of this dataset and cannot be removed; make someone else an owner first.")
                            % {"user": user.get_username()})
        raise LastOwner(_("%(user)s is the last owner of this dataset and cannot become %(role)s; make someone else an owner first.")
                        % {"user": user.get_username(), "role": Role(new_role).label})


def member_role_set(*, actor: AbstractBaseUser | None, dataset: Dataset, user: AbstractBaseUser, role: str) -> Membership:
    """Give `user` the role `role` (adding them when they are not a member). Refuses to demote the
    last owner. `actor` None means the command line (trusted)."""
    from . import membership_set

    _check_owner(actor=actor, dataset=dataset)
    _check_role_value(role)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)  # owner changes one at a time
        _guard_last_owner(dataset=locked, user=user, new_role=role)
        return membership_set(actor=None, dataset=locked, user=user, role=role)


def member_invite(*, actor: AbstractBaseUser | None, dataset: Dataset, username: str, role: str, create: bool = False) -> Membership:
    """Make a user a member with `role`; a member already gets the new role. With `create`, a
    username without an account gets one with a generated password, returned once as
    `membership.initial_password` (only its hash is stored)."""
    _check_owner(actor=actor, dataset=dataset)
    username = (username or "").strip()
    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: username}).first() if username else None
    password = None
    with transaction.atomic():
        if user is None and create and username:
            try:
                User._meta.get_field(User.USERNAME_FIELD).run_validators(username)
            except ValidationError as exc:
                raise MemberError(_("%(username)s cannot be a username: %(why)s") % {"username": repr(username), "why": " ".join(exc.messages)}) from None
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(**{User.USERNAME_FIELD: username}, password=password)
        if user is None:
            raise MemberError(_("No user named %(username)s; tick \"create the account\" to make one.") % {"username": repr(username)})
        membership = member_role_set(actor=None, dataset=dataset, user=user, role=role)
    membership.initial_password = password
    return membership


def member_remove(*, actor: AbstractBaseUser | None, dataset: Dataset, user: AbstractBaseUser) -> None:
    """Take `user` off the dataset. Their labels and assignments stay (nothing a person wrote is
    deleted); reservations they still hold end now so others can take those samples."""
    _check_owner(actor=actor, dataset=dataset)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if not Membership.objects.filter(dataset=locked, user=user).exists():
            raise MemberError(_("%(user)s is not a member of this dataset.") % {"user": user.get_username()})
        _guard_last_owner(dataset=locked, user=user, new_role=None)
        Membership.objects.filter(dataset=locked, user=user).delete()
        Assignment.objects.filter(dataset=locked, annotator=user, status=Assignment.Status.RESERVED).update(
            status=Assignment.Status.EXPIRED, finished_at=timezone.now()
        )


# ---------------------------------------------------------------------------------------------
# Annotation settings page
# ---------------------------------------------------------------------------------------------

def dataset_annotation_update(
    *, actor: AbstractBaseUser | None, dataset: Dataset, values: dict, guidelines: str
) -> rubric.AnnotationConfig:
    """Save the annotation settings (through `annotation_settings_set`, which checks them and raises
    rubric.ConfigError naming the setting) and the guidelines together: both or neither."""
    from .annotation import annotation_settings_set

    _check_owner(actor=actor, dataset=dataset)
    with transaction.atomic():
        config = annotation_settings_set(actor=None, dataset=dataset, values=values)
        if guidelines != dataset.guidelines:
            Dataset.objects.filter(pk=dataset.pk).update(guidelines=guidelines, updated_at=timezone.now())
            dataset.guidelines = guidelines
    return config

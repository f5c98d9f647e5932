from django.contrib import admin

from .models import Assignment, Dataset, GoldLabel, ImportJob, Label, Membership, Sample, SampleRevision, Suggestion


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "dataset", "role", "created_at")
    list_filter = ("role",)
    raw_id_fields = ("user", "dataset")


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "external_id", "task_type", "language", "status", "label_count", "flag_count")
    list_filter = ("status", "language")
    search_fields = ("external_id", "content_hash")
    raw_id_fields = ("dataset", "import_job")
    list_select_related = ("dataset",)
    show_full_result_count = False


@admin.register(SampleRevision)
class SampleRevisionAdmin(admin.ModelAdmin):
    list_display = ("id", "sample", "author", "status", "created_at")
    list_filter = ("status",)
    raw_id_fields = ("sample", "author")


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "original_name", "status", "imported_count", "duplicate_count", "error_count", "created_at")
    list_filter = ("status",)
    raw_id_fields = ("dataset", "created_by")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "sample", "annotator", "status", "is_gold", "reserved_at", "expires_at", "finished_at")
    list_filter = ("status", "is_gold")
    raw_id_fields = ("dataset", "sample", "annotator")
    list_select_related = ("dataset", "annotator")
    show_full_result_count = False


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    """Labels are kept as written (every version): the admin shows them, it does not edit them."""

    list_display = ("id", "sample", "annotator", "version", "is_current", "verdict", "accuracy", "completeness", "conciseness", "source", "created_at")
    list_filter = ("verdict", "is_current", "source")
    raw_id_fields = ("assignment", "dataset", "sample", "annotator")
    list_select_related = ("annotator",)
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(GoldLabel)
class GoldLabelAdmin(admin.ModelAdmin):
    list_display = ("id", "sample", "created_by", "created_at")
    raw_id_fields = ("sample", "created_by")


@admin.register(Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    list_display = ("id", "sample", "model_name", "created_at")
    raw_id_fields = ("sample", "created_by")

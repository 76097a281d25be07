from django import forms

from .actions.validation import MAX_CAPTION_CHARS, MAX_TITLE_CHARS
from .models import Policy


class UploadForm(forms.Form):
    # An empty file is kept and ends failed with a reason, as through the API and the command line.
    file = forms.FileField(allow_empty_file=True, help_text="A video file (mp4, webm, mkv, mov, ...).")
    title = forms.CharField(max_length=MAX_TITLE_CHARS, required=False)
    caption = forms.CharField(max_length=MAX_CAPTION_CHARS, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    policy = forms.ModelChoiceField(queryset=Policy.objects.order_by("name"), to_field_name="slug", required=False,
                                    empty_label="Default policy")

from django import forms
from django.utils.translation import gettext_lazy as _


class BuyForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail"),
        help_text=_("We send the receipt here."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

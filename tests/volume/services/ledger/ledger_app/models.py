from django.db import models


class Start(models.Model):
    note = models.CharField(max_length=100)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "ledger_app"

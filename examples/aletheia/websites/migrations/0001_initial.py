from django.db import migrations, models

PRACTICES = [
    ("cda", "Cabinet dentaire d'Aubagne"),
    ("vsm", "Cabinet dentaire du Cannet"),
    ("pds", "Cabinet Bodin"),
    ("ths", "Dr David Simon, Thiais"),
]


def create_websites(apps, schema_editor):
    Website = apps.get_model("websites", "Website")
    for code, name in PRACTICES:
        Website.objects.get_or_create(
            practice=code, defaults={"name": name, "headline": f"Bienvenue chez {name}"})


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Website",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("practice", models.SlugField(unique=True)),
                ("name", models.CharField(max_length=200)),
                ("headline", models.CharField(max_length=200)),
                ("body", models.TextField(blank=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["practice"]},
        ),
        migrations.RunPython(create_websites, migrations.RunPython.noop),
    ]

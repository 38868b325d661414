"""What a notification draft must show: one label per required field, in each language."""

# One entry per key of sealbill.domain.breach_notice.FIELD_LABELS.
LABELS = {
    "en": {
        "notification_type": "Notification type:", "aware_at": "Time of awareness:",
        "delay_reason": "Reasons for the delay", "controller": "Controller contact:",
        "dpo": "Data protection officer or other contact point:",
        "breach_period": "Breach start:", "detection": "How it was detected:",
        "nature": "Nature of the breach", "cause": "Cause:", "description": "Description:",
        "subjects": "Approximate number of data subjects:",
        "records": "Approximate number of personal-data records:",
        "data_categories": "Categories of personal data:",
        "member_states": "Member states concerned", "consequences": "Likely consequences",
        "severity": "Severity (ENISA method", "measures": "Measures taken:",
        "communication": "Communication to the data subjects",
    },
    "fr": {
        "notification_type": "Type de notification :",
        "aware_at": "Date de prise de connaissance :", "delay_reason": "Motifs du retard",
        "controller": "Coordonnées du responsable :",
        "dpo": "Délégué à la protection des données ou autre point de contact :",
        "breach_period": "Début de la violation :", "detection": "Mode de découverte :",
        "nature": "Nature de la violation", "cause": "Origine :", "description": "Description :",
        "subjects": "Nombre approximatif de personnes concernées :",
        "records": "Nombre approximatif d'enregistrements :",
        "data_categories": "Catégories de données :",
        "member_states": "États membres concernés", "consequences": "Conséquences probables",
        "severity": "Gravité (méthode ENISA", "measures": "Mesures prises :",
        "communication": "Communication aux personnes concernées",
    },
}

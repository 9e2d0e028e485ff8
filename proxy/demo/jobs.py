"""The demo careers site's data: a handful of job openings and their schema.org form.

Pure data and pure functions; `site.py` serves them, `pages.py` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

COMPANY = "Acme Corp"
COMPANY_URL = "https://acme.example"
OPEN_DAYS = 60      # how long after today a posting stays valid


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    title: str
    department: str
    city: str
    state: str
    country: str           # ISO 3166-1 alpha-2
    postal_code: str
    street: str
    salary_min: int
    salary_max: int
    currency: str
    salary_unit: str       # schema.org unitText: HOUR, MONTH, YEAR
    employment_type: str   # schema.org: FULL_TIME, PART_TIME, CONTRACTOR, ...
    date_posted: str       # ISO date
    valid_through: str     # ISO datetime
    summary: str
    description_html: str  # the HTML an ATS keeps in JobPosting.description

    @property
    def location(self) -> str:
        return f"{self.city}, {self.state}, {self.country}"

    @property
    def salary_text(self) -> str:
        unit = {"HOUR": "hour", "MONTH": "month", "YEAR": "year"}[self.salary_unit]
        return f"{self.currency} {self.salary_min:,}–{self.salary_max:,} per {unit}"

    @property
    def employment_text(self) -> str:
        return self.employment_type.replace("_", " ").title()


def _desc(intro: str, duties: tuple[str, ...], offer: str) -> str:
    items = "".join(f"<li>{d}</li>" for d in duties)
    return f"<p>{intro}</p><h3>What you will do</h3><ul>{items}</ul><p>{offer}</p>"


def _posted(days_ago: int) -> str:
    # Relative to today, so the demo's postings are always fresh for the feed.
    return (date.today() - timedelta(days=days_ago)).isoformat()


def _valid_through() -> str:
    return f"{date.today() + timedelta(days=OPEN_DAYS)}T23:59:59Z"


_BENEFITS = "We offer health cover, 30 days of paid leave and a yearly learning budget."

JOBS: tuple[Job, ...] = (
    Job("1", "Senior Backend Engineer", "Engineering", "Austin", "TX", "US", "78701",
        "600 Congress Ave", 140000, 175000, "USD", "YEAR", "FULL_TIME",
        _posted(12), _valid_through(),
        "Build the services behind our logistics platform.",
        _desc("Join the platform team that moves two million parcels a day.",
              ("Design and run Python services on Kubernetes",
               "Own reliability of the routing API",
               "Mentor engineers and review designs"), _BENEFITS)),
    Job("2", "Warehouse Associate", "Operations", "Columbus", "OH", "US", "43215",
        "250 Civic Center Dr", 19, 23, "USD", "HOUR", "FULL_TIME",
        _posted(4), _valid_through(),
        "Pick, pack and ship orders on day or night shift.",
        _desc("Keep our busiest fulfilment centre moving.",
              ("Pick and pack customer orders accurately",
               "Operate pallet jacks after paid training",
               "Keep the floor safe and tidy"), _BENEFITS)),
    Job("3", "Registered Nurse – Occupational Health", "People", "Denver", "CO", "US",
        "80202", "1600 Champa St", 82000, 98000, "USD", "YEAR", "FULL_TIME",
        _posted(16), _valid_through(),
        "Lead on-site health care for 1,200 colleagues.",
        _desc("Run our on-site clinic and wellbeing programme.",
              ("Provide first-line care and health screenings",
               "Advise managers on workplace safety",
               "Keep accurate, confidential records"), _BENEFITS)),
    Job("4", "Delivery Driver (CDL-B)", "Logistics", "Phoenix", "AZ", "US", "85004",
        "200 W Washington St", 24, 29, "USD", "HOUR", "PART_TIME",
        _posted(2), _valid_through(),
        "Deliver to business customers across the valley.",
        _desc("Drive a modern box truck on a fixed local route.",
              ("Load, drive and deliver on schedule",
               "Complete pre-trip inspections",
               "Be the friendly face of Acme"), _BENEFITS)),
    Job("5", "Product Designer", "Design", "Berlin", "BE", "DE", "10115",
        "Invalidenstraße 117", 70000, 88000, "EUR", "YEAR", "FULL_TIME",
        _posted(8), _valid_through(),
        "Shape the tools our customers use every day.",
        _desc("Work across research, interaction and visual design.",
              ("Run discovery interviews with shippers",
               "Prototype and test flows in Figma",
               "Grow our design system"), _BENEFITS)),
    Job("6", "Customer Support Specialist", "Customer Success", "Toronto", "ON", "CA",
        "M5H 2N2", "100 Queen St W", 3900, 4500, "CAD", "MONTH", "FULL_TIME",
        _posted(1), _valid_through(),
        "Help customers by chat, phone and email.",
        _desc("Be the voice of Acme for thousands of small businesses.",
              ("Solve shipping questions on first contact",
               "Write help-centre articles",
               "Feed customer insight back to product"), _BENEFITS)),
    Job("7", "Data Analyst (Contract)", "Finance", "London", "ENG", "GB", "EC2V 7HH",
        "1 Guildhall Yard", 450, 550, "GBP", "HOUR", "CONTRACTOR",
        _posted(6), _valid_through(),
        "Six-month contract modelling network costs.",
        _desc("Turn shipment data into decisions.",
              ("Model cost per parcel across the network",
               "Build dashboards finance trusts",
               "Present findings to leadership"), _BENEFITS)),
)

_BY_ID = {job.id: job for job in JOBS}


def job_by_id(job_id: str) -> Job | None:
    return _BY_ID.get(job_id)


def job_posting(job: Job, base_url: str) -> dict[str, Any]:
    """The schema.org JobPosting an ATS embeds as JSON-LD on the job page."""
    return {
        "@context": "https://schema.org/",
        "@type": "JobPosting",
        "title": job.title,
        "description": job.description_html,
        "identifier": {"@type": "PropertyValue", "name": COMPANY, "value": job.id},
        "datePosted": job.date_posted,
        "validThrough": job.valid_through,
        "employmentType": job.employment_type,
        "hiringOrganization": {
            "@type": "Organization",
            "name": COMPANY,
            "sameAs": COMPANY_URL,
        },
        "jobLocation": {
            "@type": "Place",
            "address": {
                "@type": "PostalAddress",
                "streetAddress": job.street,
                "addressLocality": job.city,
                "addressRegion": job.state,
                "postalCode": job.postal_code,
                "addressCountry": job.country,
            },
        },
        "baseSalary": {
            "@type": "MonetaryAmount",
            "currency": job.currency,
            "value": {
                "@type": "QuantitativeValue",
                "minValue": job.salary_min,
                "maxValue": job.salary_max,
                "unitText": job.salary_unit,
            },
        },
        "url": f"{base_url}/jobs/{job.id}",
        "directApply": True,
    }

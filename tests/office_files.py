"""Real Office files built with python-docx, python-pptx and openpyxl (shared by the ingest, API and
browser tests)."""

from __future__ import annotations

import io

REFUNDS = "Refunds are paid within five working days."


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Refund policy", level=1)
    document.add_paragraph(f"{REFUNDS} Gift cards cannot be refunded.")
    document.add_heading("Plans", level=1)
    table = document.add_table(rows=3, cols=2)
    for r, (plan, price) in enumerate([("Plan", "Price"), ("Basic", "10 EUR a month"), ("Team", "45 EUR a month")]):
        table.cell(r, 0).text, table.cell(r, 1).text = plan, price
    document.add_paragraph("Prices include VAT.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slides = [
        ("Welcome", ["Quarterly review of the platform team"]),
        ("Roadmap", ["Ship the mobile app in March", "Hire two designers"]),
        ("Hosting", ["Servers run in Frankfurt"]),
        ("Risks", ["The data centre lease ends in June"]),
    ]
    for title, bullets in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        frame = slide.placeholders[1].text_frame
        frame.text = bullets[0]
        for bullet in bullets[1:]:
            frame.add_paragraph().text = bullet
    table = deck.slides[2].shapes.add_table(3, 2, Inches(1), Inches(5), Inches(6), Inches(1)).table
    for r, (site, power) in enumerate([("Site", "Power"), ("Frankfurt", "2 MW"), ("Dublin", "1 MW")]):
        table.cell(r, 0).text, table.cell(r, 1).text = site, power
    deck.slides[3].notes_slide.notes_text_frame.text = "Mention the backup site in Lisbon"
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sales = workbook.active
    sales.title = "Sales"
    sales.append(["Region", "Revenue", "Quarter"])
    sales.append(["North", 1200.0, "Q3"])
    sales.append(["South", 800, "Q3"])
    staff = workbook.create_sheet("Staff")
    staff.append(["Name", "Role"])
    staff.append(["Alice", "Engineer"])
    staff.append([None, None])
    staff.append(["Bob", "Designer"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


CSV = b'name,team,office\nAlice,Search,Berlin\n"Bob, Jr",Ads,"Paris\nLa Defense"\nCarol,Billing,Rome\n'

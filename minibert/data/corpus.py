"""The embedded default corpus: documents about a small generated world.

No download: a world of people, cities, countries, companies, sports clubs, animals,
dishes and festivals is drawn from a seed,
and each document tells a few facts about one of them in varied sentences. Facts hold
across documents (Oslo is always in Norway, a person's pronoun matches their name), so a
masked word can be predicted from context, and every document keeps to one subject, so
next-sentence prediction has something to learn. The same world yields question /
context / answer triples for the question-answering fine-tuning demo.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FIRST_NAMES = {  # name -> pronoun set
    **{n: "she" for n in "anna maria sofia elena laura clara nora emma julia lena mia olivia hanna sara ida "
                        "alice grace ruby lucy amelia zoe chloe ella rosa vera irene helen diana eva".split()},
    **{n: "he" for n in "james john peter paul lucas noah oliver erik hugo leo oscar felix adam daniel samuel "
                       "thomas henry victor martin simon david jonas liam max arthur ivan omar karl tom".split()},
}
PRONOUNS = {"she": ("she", "her", "her"), "he": ("he", "him", "his")}
LAST_NAMES = ("berg smith brown meyer novak rossi silva jensen moreau costa weber fischer larsen "
              "kowalski horvat nielsen dubois garcia lopez marino keller wagner becker hoffman "
              "lindqvist peterson walker turner holm carter hughes ward cooper reed bell").split()
COUNTRIES = {  # country: (region, language, currency, capital, other cities)
    "norway": ("the north", "norwegian", "krone", "oslo", ("bergen", "tromso", "stavanger")),
    "sweden": ("the north", "swedish", "krona", "stockholm", ("malmo", "uppsala", "gothenburg")),
    "france": ("the west", "french", "euro", "paris", ("lyon", "nice", "bordeaux")),
    "spain": ("the south", "spanish", "euro", "madrid", ("seville", "valencia", "bilbao")),
    "italy": ("the south", "italian", "euro", "rome", ("milan", "naples", "turin")),
    "germany": ("the center", "german", "euro", "berlin", ("munich", "hamburg", "cologne")),
    "poland": ("the east", "polish", "zloty", "warsaw", ("krakow", "gdansk", "poznan")),
    "japan": ("the far east", "japanese", "yen", "tokyo", ("osaka", "kyoto", "sapporo")),
    "brazil": ("the southern hemisphere", "portuguese", "real", "brasilia", ("recife", "salvador", "manaus")),
    "canada": ("the far west", "english", "dollar", "ottawa", ("toronto", "montreal", "vancouver")),
    "egypt": ("the desert south", "arabic", "pound", "cairo", ("alexandria", "luxor", "aswan")),
    "india": ("the far south", "hindi", "rupee", "delhi", ("mumbai", "chennai", "pune")),
}
COUNTRY_TRAITS = {  # country: (known for, national sport, landscape)
    "norway": ("fjords", "skiing", "mountains"), "sweden": ("forests", "hockey", "lakes"),
    "france": ("wine", "cycling", "vineyards"), "spain": ("beaches", "football", "olive groves"),
    "italy": ("pasta", "football", "hills"), "germany": ("cars", "handball", "rivers"),
    "poland": ("castles", "volleyball", "plains"), "japan": ("temples", "baseball", "islands"),
    "brazil": ("coffee", "football", "rainforests"), "canada": ("maple syrup", "hockey", "prairies"),
    "egypt": ("pyramids", "squash", "deserts"), "india": ("spices", "cricket", "valleys"),
}
CITY_COUNTRY = {c: k for k, v in COUNTRIES.items() for c in (v[3], *v[4])}
JOBS = {  # job: (workplace, what they do)
    "doctor": ("hospital", "treats patients"), "nurse": ("hospital", "cares for patients"),
    "teacher": ("school", "teaches children"), "baker": ("bakery", "bakes bread"),
    "chef": ("restaurant", "cooks meals"), "pilot": ("airport", "flies planes"),
    "farmer": ("farm", "grows vegetables"), "lawyer": ("court", "defends clients"),
    "engineer": ("factory", "builds machines"), "architect": ("studio", "designs houses"),
    "journalist": ("newspaper", "writes stories"), "librarian": ("library", "lends books"),
    "mechanic": ("garage", "repairs cars"), "painter": ("studio", "paints pictures"),
    "musician": ("orchestra", "plays music"), "pharmacist": ("pharmacy", "sells medicine"),
    "programmer": ("office", "writes software"), "fisherman": ("harbor", "catches fish"),
    "gardener": ("park", "plants flowers"), "scientist": ("laboratory", "runs experiments"),
}
INDUSTRIES = {  # industry: products
    "software": "apps", "car": "electric cars", "food": "frozen pizza", "toy": "wooden toys",
    "shipping": "cargo ships", "energy": "solar panels", "fashion": "winter coats", "music": "guitars",
    "medicine": "vaccines", "furniture": "kitchen tables", "bicycle": "mountain bikes", "camera": "cameras",
}
COMPANY_NAMES = ("norda kelvix brightway solara petrix oakline bluefin tornic velora quantis harbora "
                 "greenleaf ironhill mistral copperfield silverline redstone nimbus zephyra altima "
                 "corvid lumina northstar evergreen").split()
HOBBIES = ("painting", "hiking", "swimming", "chess", "gardening", "fishing", "cooking", "running", "reading",
           "dancing", "singing", "climbing", "sailing", "knitting", "photography", "cycling")
FOODS = ("soup", "rice", "noodles", "cheese", "apples", "bread", "pancakes", "salad", "fish", "chocolate",
         "tomatoes", "potatoes", "oranges", "dumplings", "curry", "berries")
PETS = ("dog", "cat", "parrot", "rabbit", "horse", "turtle", "hamster", "goat")
SUBJECTS = ("history", "physics", "biology", "music", "mathematics", "chemistry", "law", "medicine",
            "economics", "art", "geography", "literature")
MONTHS = ("january february march april may june july august september october november december").split()
WEATHER = ("cold", "warm", "rainy", "sunny", "windy", "snowy", "mild", "hot")
SPORTS = ("football", "basketball", "hockey", "volleyball", "handball", "rugby", "tennis", "cricket")
CLUB_WORDS = ("united", "rovers", "athletic", "wanderers", "rangers", "city", "stars", "lions")
COLORS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple")
ANIMALS = {  # animal: (home, food, size, sound)
    "wolf": ("forest", "meat", "large", "howls"), "owl": ("forest", "mice", "small", "hoots"),
    "beaver": ("river", "bark", "medium", "slaps its tail"), "penguin": ("ice", "fish", "medium", "squawks"),
    "camel": ("desert", "dry plants", "large", "grunts"), "frog": ("pond", "insects", "small", "croaks"),
    "dolphin": ("sea", "fish", "large", "whistles"), "squirrel": ("park", "nuts", "small", "chatters"),
    "eagle": ("mountains", "rabbits", "large", "screams"), "bee": ("meadow", "nectar", "tiny", "buzzes"),
    "bear": ("forest", "berries", "huge", "growls"), "seal": ("coast", "fish", "large", "barks"),
    "lizard": ("desert", "insects", "small", "hisses"), "deer": ("forest", "grass", "large", "bleats"),
}
DISHES = {  # dish: (main ingredient, way of cooking, course)
    "lasagna": ("pasta", "baked", "main course"), "gazpacho": ("tomatoes", "blended", "starter"),
    "ramen": ("noodles", "boiled", "main course"), "pierogi": ("dough", "boiled", "main course"),
    "risotto": ("rice", "stirred", "main course"), "ratatouille": ("vegetables", "stewed", "main course"),
    "tiramisu": ("coffee", "layered", "dessert"), "falafel": ("chickpeas", "fried", "snack"),
    "goulash": ("beef", "stewed", "main course"), "paella": ("rice", "fried", "main course"),
    "pancakes": ("flour", "fried", "breakfast"), "sushi": ("fish", "rolled", "main course"),
    "brownies": ("chocolate", "baked", "dessert"), "hummus": ("chickpeas", "blended", "starter"),
}
SEASONS = ("spring", "summer", "autumn", "winter")
FESTIVAL_KINDS = ("music", "film", "food", "book", "light", "flower", "jazz", "kite")
LANDMARKS = ("cathedral", "old bridge", "harbor", "market square", "museum", "castle", "tower", "botanical garden")


PROPER_NOUNS = frozenset([*FIRST_NAMES, *LAST_NAMES, *COUNTRIES, *CITY_COUNTRY, *COMPANY_NAMES,
                          *(v[1] for v in COUNTRIES.values()), *MONTHS])
_WORD = re.compile(r"[a-z]+")


def capitalize_names(text: str) -> str:
    """"anna lives in oslo" -> "Anna lives in Oslo": names of people, places, companies, languages."""
    return _WORD.sub(lambda m: m.group(0).capitalize() if m.group(0) in PROPER_NOUNS else m.group(0), text)


def _sentence_case(text: str | None) -> str | None:
    return None if text is None else _cap(capitalize_names(text))


@dataclass
class Fact:
    """One sentence, and optionally a question it answers and where the answer is in it."""

    sentence: str
    question: str | None = None
    answer: str | None = None

    def __post_init__(self):
        self.sentence, self.question = _sentence_case(self.sentence), _sentence_case(self.question)
        if self.answer is not None:
            self.answer = capitalize_names(self.answer)
        if self.answer is not None and self.answer not in self.sentence:
            raise AssertionError(f"answer {self.answer!r} not in {self.sentence!r}")


def pick(rng, options):
    return options[rng.randrange(len(options))]


class World:
    """The fixed facts that documents draw on: companies (with a city and an industry) and people."""

    def __init__(self, seed: int):
        rng = random.Random(seed)
        cities = sorted(CITY_COUNTRY)
        self.companies = {name: (pick(rng, list(INDUSTRIES)), pick(rng, cities), rng.randint(1890, 2015))
                          for name in COMPANY_NAMES}
        self.founders = {name: self.new_person(rng) for name in COMPANY_NAMES}

    @staticmethod
    def new_person(rng):
        first = pick(rng, list(FIRST_NAMES))
        return first, pick(rng, LAST_NAMES), FIRST_NAMES[first]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def with_article(noun: str) -> str:
    """The noun with its indefinite article: "a farmer", "an engineer" (the world has no word like "hour" or "unit")."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


PLURALS = {"wolf": "wolves", "deer": "deer"}  # the world's nouns that do not just add an -s


def _plural(noun: str) -> str:
    return PLURALS.get(noun, noun + "s")


def person_facts(world: World, rng) -> list[Fact]:
    first, last, gender = world.new_person(rng)
    he, him, his = PRONOUNS[gender]
    name = f"{first} {last}"
    city = pick(rng, sorted(CITY_COUNTRY))
    country = CITY_COUNTRY[city]
    job = pick(rng, list(JOBS))
    workplace, duty = JOBS[job]
    company = pick(rng, COMPANY_NAMES)
    year = rng.randint(1950, 2005)
    hobby, food, pet, subject = (pick(rng, x) for x in (HOBBIES, FOODS, PETS, SUBJECTS))
    kids = pick(rng, ["one child", "two children", "three children", "four children"])
    who = lambda: pick(rng, [first, he])  # noqa: E731 - first name or pronoun, as people write
    intro = pick(rng, [
        Fact(f"{name} was born in {city} in {year}.", f"In which city was {first} born?", city),
        Fact(f"{name} grew up in {city}, a city in {country}.", f"Where did {first} grow up?", city),
        Fact(f"{name} is {with_article(job)} from {city}.", f"What is the job of {first}?", job),
    ])
    facts = [
        pick(rng, [Fact(f"{_cap(who())} works as {with_article(job)} at {with_article(workplace)} in {city}.", f"What does {first} work as?", job),
                    Fact(f"Every day {first} goes to the {workplace}, where {he} {duty}.", f"Where does {first} work?", workplace)]),
        Fact(f"In {his} free time {first} enjoys {hobby}.", f"What does {first} enjoy in {his} free time?", hobby),
        pick(rng, [Fact(f"{_cap(his)} favorite food is {food}.", None),
                    Fact(f"{first} likes to eat {food} for dinner.", f"What does {first} like to eat?", food)]),
        Fact(f"{first} has {with_article(pet)} that follows {him} everywhere.", f"Which pet does {first} have?", pet),
        Fact(f"{_cap(who())} studied {subject} at the university of {city}.", f"What did {first} study?", subject),
        pick(rng, [Fact(f"{_cap(he)} has {kids} and lives near the center of {city}.", None),
                    Fact(f"{first} is married and has {kids}.", None)]),
        Fact(f"Before that, {first} worked for {company} for several years.", f"Which company did {first} work for?", company),
        Fact(f"{_cap(he)} speaks {COUNTRIES[country][1]} at home.", f"Which language does {first} speak at home?", COUNTRIES[country][1]),
        Fact(f"Each {pick(rng, MONTHS)} {first} visits {his} parents in {pick(rng, COUNTRIES[country][4])}.", None),
    ]
    return [intro] + facts


def city_facts(world: World, rng) -> list[Fact]:
    city = pick(rng, sorted(CITY_COUNTRY))
    country = CITY_COUNTRY[city]
    region, language, currency, capital, others = COUNTRIES[country]
    neighbor = pick(rng, [c for c in (capital, *others) if c != city])
    landmark, food, month, weather = (pick(rng, x) for x in (LANDMARKS, FOODS, MONTHS, WEATHER))
    local = [c for c, (_, hq, _) in world.companies.items() if hq == city]
    intro = pick(rng, [
        Fact(f"{_cap(city)} is a city in {country}.", f"In which country is {city}?", country),
        Fact(f"{_cap(city)} is one of the largest cities of {country}.", f"Which country is {city} in?", country),
    ])
    facts = [
        Fact(f"About {rng.randint(2, 900)} thousand people live in {city}.", None),
        Fact(f"{_cap(city)} is famous for its {landmark}.", f"What is {city} famous for?", landmark),
        Fact(f"The people of {city} love to eat {food}.", f"What do the people of {city} love to eat?", food),
        Fact(f"In {month} the weather in {city} is usually {weather}.", None),
        Fact(f"Most people in {city} speak {language}.", f"What language do people in {city} speak?", language),
        Fact(f"From {city} it is a short trip to {neighbor}, another city in {country}.", None),
        Fact(f"Shops in {city} take the {currency}.", f"Which currency do shops in {city} take?", currency),
    ]
    if city == capital:
        facts.append(Fact(f"{_cap(city)} is the capital of {country}.", f"What is the capital of {country}?", city))
    if local:
        company = pick(rng, local)
        facts.append(Fact(f"The {world.companies[company][0]} company {company} has its headquarters in {city}.",
                          f"Which company has its headquarters in {city}?", company))
    return [intro] + facts


def company_facts(world: World, rng) -> list[Fact]:
    company = pick(rng, COMPANY_NAMES)
    industry, city, year = world.companies[company]
    country = CITY_COUNTRY[city]
    founder = " ".join(world.founders[company][:2])
    product = INDUSTRIES[industry]
    elsewhere = pick(rng, [c for c in CITY_COUNTRY if CITY_COUNTRY[c] != country])
    intro = pick(rng, [
        Fact(f"{_cap(company)} is {with_article(industry)} company based in {city}.", f"Where is {company} based?", city),
        Fact(f"{_cap(company)} is {with_article(industry)} company from {country}.", f"What kind of company is {company}?", industry),
    ])
    facts = [
        Fact(f"It was founded in {year} by {founder}.", f"Who founded {company}?", founder),
        Fact(f"{_cap(company)} makes {product} for customers in many countries.", f"What does {company} make?", product),
        Fact(f"The company has about {rng.randint(2, 90) * 100} employees.", None),
        Fact(f"Its headquarters are in {city}, {country}.", f"Where are the headquarters of {company}?", city),
        Fact(f"Last year {company} opened a new office in {elsewhere}.", f"Where did {company} open a new office?", elsewhere),
        Fact(f"Many of its workers are engineers who work on new {product}.", None),
        Fact(f"The {industry} market grew in {pick(rng, MONTHS)}, and {company} sold more {product} than ever.", None),
    ]
    return [intro] + facts


def country_facts(world: World, rng) -> list[Fact]:
    country = pick(rng, list(COUNTRIES))
    region, language, currency, capital, others = COUNTRIES[country]
    known, sport, landscape = COUNTRY_TRAITS[country]
    intro = pick(rng, [
        Fact(f"{_cap(country)} is a country in {region}.", None),
        Fact(f"{_cap(country)} is a country known for its {known}.", f"What is {country} known for?", known),
    ])
    facts = [
        Fact(f"Its capital is {capital}.", f"What is the capital of {country}?", capital),
        Fact(f"The main language of {country} is {language}.", f"What is the main language of {country}?", language),
        Fact(f"People in {country} pay with the {currency}.", f"What do people in {country} pay with?", currency),
        Fact(f"Other large cities in {country} are {others[0]} and {others[1]}.", None),
        Fact(f"The national sport of {country} is {sport}.", f"What is the national sport of {country}?", sport),
        Fact(f"Visitors come to see the {landscape} of {country}.", f"What do visitors come to see in {country}?", landscape),
        Fact(f"In {pick(rng, MONTHS)} many tourists travel to {pick(rng, others)}.", None),
    ]
    return [intro] + facts


def club_facts(world: World, rng) -> list[Fact]:
    city = pick(rng, sorted(CITY_COUNTRY))
    club = f"{city} {pick(rng, CLUB_WORDS)}"
    sport, color, other = pick(rng, SPORTS), pick(rng, COLORS), pick(rng, sorted(CITY_COUNTRY))
    coach = " ".join(world.new_person(rng)[:2])
    fans = rng.randint(2, 60)
    intro = pick(rng, [
        Fact(f"{_cap(club)} is {with_article(sport)} club from {city}.", f"Which sport does {club} play?", sport),
        Fact(f"{_cap(club)} plays {sport} in the national league.", f"Which sport does {club} play?", sport),
    ])
    facts = [
        Fact(f"The team wears {color} shirts at home games.", f"What color are the shirts of {club}?", color),
        Fact(f"Its coach is {coach}.", f"Who is the coach of {club}?", coach),
        Fact(f"About {fans} thousand fans come to every home game.", None),
        Fact(f"The club was founded in {rng.randint(1880, 1990)} by a group of students.", None),
        Fact(f"Last season the team won the cup after a final against {other}.", f"Who did {club} play in the final?", other),
        Fact(f"The players train every morning at the stadium in {city}.", f"Where do the players of {club} train?", city),
        Fact(f"Many young players dream of playing {sport} for the club.", None),
    ]
    return [intro] + facts


def animal_facts(world: World, rng) -> list[Fact]:
    animal = pick(rng, list(ANIMALS))
    home, food, size, sound = ANIMALS[animal]
    country = pick(rng, list(COUNTRIES))
    intro = pick(rng, [
        Fact(f"The {animal} is {with_article(size)} animal that lives in the {home}.", f"Where does the {animal} live?", home),
        Fact(f"{_cap(with_article(animal))} makes its home in the {home}.", f"Where does the {animal} live?", home),
    ])
    facts = [
        Fact(f"It mostly eats {food}.", f"What does the {animal} eat?", food),
        Fact(f"When it is alarmed, the {animal} {sound}.", None),
        Fact(f"Young animals stay with their mother through the first {pick(rng, SEASONS)}.", None),
        Fact(f"Many {_plural(animal)} can be seen in {country} in {pick(rng, SEASONS)}.", f"In which country can many {_plural(animal)} be seen?", country),
        Fact(f"Scientists count the {_plural(animal)} every year to protect them.", None),
        Fact(f"Children like to watch the {animal} at the zoo.", None),
        Fact(f"The {animal} is most active early in the morning.", None),
    ]
    return [intro] + facts


def dish_facts(world: World, rng) -> list[Fact]:
    dish = pick(rng, list(DISHES))
    ingredient, method, course = DISHES[dish]
    country = pick(rng, list(COUNTRIES))
    chef = " ".join(world.new_person(rng)[:2])
    minutes = rng.randint(2, 12) * 10
    intro = pick(rng, [
        Fact(f"{_cap(dish)} is {with_article(course)} made from {ingredient}.", f"What is {dish} made from?", ingredient),
        Fact(f"To make {dish} you need {ingredient}.", f"What do you need to make {dish}?", ingredient),
    ])
    facts = [
        Fact(f"The {ingredient} is {method} before it is served.", None),
        Fact(f"It takes about {minutes} minutes to prepare.", None),
        Fact(f"The dish is very popular in {country}.", f"Where is {dish} very popular?", country),
        Fact(f"The chef {chef} wrote a famous book about {dish}.", f"Who wrote a famous book about {dish}?", chef),
        Fact(f"Many families eat {dish} on {pick(rng, MONTHS)} holidays.", None),
        Fact("Some cooks add a little salt and fresh herbs.", None),
        Fact(f"It tastes best when it is served as {with_article(course)}.", None),
    ]
    return [intro] + facts


def festival_facts(world: World, rng) -> list[Fact]:
    city = pick(rng, sorted(CITY_COUNTRY))
    kind, month = pick(rng, FESTIVAL_KINDS), pick(rng, MONTHS)
    name = f"the {city} {kind} festival"
    organizer = " ".join(world.new_person(rng)[:2])
    visitors = rng.randint(2, 90)
    intro = pick(rng, [
        Fact(f"{_cap(name)} takes place every year in {month}.", f"When does {name} take place?", month),
        Fact(f"Every {month}, {city} holds {with_article(kind)} festival.", f"When does {city} hold its {kind} festival?", month),
    ])
    facts = [
        Fact(f"It lasts for {rng.randint(2, 9)} days and fills the streets of {city}.", None),
        Fact(f"About {visitors} thousand visitors come each year.", None),
        Fact(f"The festival was started by {organizer}.", f"Who started the {kind} festival in {city}?", organizer),
        Fact(f"Tickets are sold at the old station in {city}.", None),
        Fact(f"The best {kind} wins a prize on the last evening.", None),
        Fact(f"Many visitors travel from {CITY_COUNTRY[city]} and from abroad.", "Where do many visitors of the festival come from?", CITY_COUNTRY[city]),
        Fact("Local volunteers help to build the stages.", None),
    ]
    return [intro] + facts


DOCUMENT_KINDS = (person_facts, city_facts, company_facts, country_facts,
                  club_facts, animal_facts, dish_facts, festival_facts)


def document_facts(world: World, rng, kind) -> list[Fact]:
    facts = kind(world, rng)
    body = facts[1:]
    rng.shuffle(body)
    n = rng.randint(3, len(body))  # 4 .. 10 sentences
    return [facts[0]] + body[:n]


def generate_corpus(num_documents: int = 3000, seed: int = 0) -> list[list[str]]:
    """Documents (lists of sentences) about the generated world, the eight kinds in turn."""
    world = World(seed)
    rng = random.Random(seed + 1)
    return [[f.sentence for f in document_facts(world, rng, DOCUMENT_KINDS[i % len(DOCUMENT_KINDS)])] for i in range(num_documents)]


def split_documents(documents, eval_fraction: float = 0.1):
    """(train, eval): the last eval_fraction of the documents are held out."""
    n_eval = max(1, int(round(len(documents) * eval_fraction))) if len(documents) > 1 else 0
    return documents[: len(documents) - n_eval], documents[len(documents) - n_eval:]


def generate_qa(num_examples: int = 2000, seed: int = 0) -> list[dict]:
    """Question / context / answer triples from the same world.

    Each example: {"id", "question", "context", "answers": [{"text", "answer_start"}]}, the
    answer's character offset pointing into the context (SQuAD's layout).
    """
    world = World(seed)
    rng = random.Random(seed + 2)
    examples = []
    while len(examples) < num_examples:
        facts = document_facts(world, rng, DOCUMENT_KINDS[len(examples) % len(DOCUMENT_KINDS)])
        answerable = [i for i, f in enumerate(facts) if f.question]
        if not answerable:
            continue
        target = facts[pick(rng, answerable)]
        context, start = "", None
        for f in facts:
            if context:
                context += " "
            if f is target:
                start = len(context) + target.sentence.index(target.answer)
            context += f.sentence
        examples.append({"id": f"gen-{len(examples)}", "question": target.question, "context": context,
                         "answers": [{"text": target.answer, "answer_start": start}]})
    return examples


def generate_classification(num_examples: int = 4000, seed: int = 0) -> tuple[list, list]:
    """Sentences labelled with the kind of document they come from (person, city, ...):
    (examples, label_names), each example {"text", "label"} with label an index into label_names.
    A sentence alone often gives its topic away, but not always ("It was founded in 1990.")."""
    world = World(seed)
    rng = random.Random(seed + 3)
    names = [kind.__name__.replace("_facts", "") for kind in DOCUMENT_KINDS]
    examples = []
    while len(examples) < num_examples:
        label = len(examples) % len(DOCUMENT_KINDS)
        facts = document_facts(world, rng, DOCUMENT_KINDS[label])
        examples.append({"text": pick(rng, facts).sentence, "label": label})
    return examples, names

"""Fact tables and phrase templates for make_demo_data.py (all text written for this project)."""

# ------------------------------------------------------------------------------------------------ fact tables

CAPITALS = """France|Paris|Europe; Germany|Berlin|Europe; Italy|Rome|Europe; Spain|Madrid|Europe;
Portugal|Lisbon|Europe; Japan|Tokyo|Asia; China|Beijing|Asia; Egypt|Cairo|Africa; Kenya|Nairobi|Africa;
Canada|Ottawa|North America;
Australia|Canberra|Oceania; Brazil|Brasília|South America; Argentina|Buenos Aires|South America;
Mexico|Mexico City|North America; Peru|Lima|South America; Norway|Oslo|Europe; Sweden|Stockholm|Europe;
Finland|Helsinki|Europe; Denmark|Copenhagen|Europe; Poland|Warsaw|Europe; Greece|Athens|Europe;
Ireland|Dublin|Europe; Austria|Vienna|Europe; Hungary|Budapest|Europe; the Czech Republic|Prague|Europe;
India|New Delhi|Asia; Thailand|Bangkok|Asia; South Korea|Seoul|Asia; Vietnam|Hanoi|Asia; Turkey|Ankara|*;
Chile|Santiago|South America; Colombia|Bogotá|South America; Cuba|Havana|North America;
New Zealand|Wellington|Oceania; Belgium|Brussels|Europe; the United Kingdom|London|Europe; Morocco|Rabat|Africa;
Nigeria|Abuja|Africa; Ghana|Accra|Africa; Ethiopia|Addis Ababa|Africa; the Philippines|Manila|Asia;
Iceland|Reykjavík|Europe; Ukraine|Kyiv|Europe; Romania|Bucharest|Europe; Saudi Arabia|Riyadh|Asia;
Russia|Moscow|*; Pakistan|Islamabad|Asia; Ecuador|Quito|South America; Uruguay|Montevideo|South America"""
CAPITALS = [tuple(row.strip().split("|")) for row in CAPITALS.split(";")]  # '*' = spans Europe and Asia
CONTINENTS = ["Africa", "Asia", "Europe", "North America", "South America", "Oceania"]
# The big city people often mistake for the capital: the most learnable wrong answer.
CONFUSED = {"Australia": "Sydney", "Canada": "Toronto", "Brazil": "Rio de Janeiro", "Turkey": "Istanbul",
            "Nigeria": "Lagos", "Morocco": "Casablanca", "New Zealand": "Auckland", "India": "Mumbai",
            "Pakistan": "Karachi", "Vietnam": "Ho Chi Minh City", "Ecuador": "Guayaquil", "China": "Shanghai",
            "Spain": "Barcelona", "Italy": "Milan", "Germany": "Munich"}

FACTS = [  # (topic, phrasings, correct reply, wrong reply)
    ("the largest ocean", ["What is the largest ocean on Earth?", "Which ocean is the biggest?"],
     "The Pacific Ocean is the largest ocean on Earth.", "The Atlantic Ocean is the largest ocean on Earth."),
    ("the tallest mountain", ["What is the tallest mountain in the world?", "Which mountain is the highest?"],
     "Mount Everest, on the border of Nepal and China, is the tallest mountain above sea level.",
     "K2 is the tallest mountain in the world."),
    ("the largest continent", ["What is the largest continent?", "Which continent is the biggest?"],
     "Asia is the largest continent, both by area and by population.", "Africa is the largest continent."),
    ("continents", ["How many continents are there?", "How many continents does Earth have?"],
     "By the most common count there are seven: Africa, Antarctica, Asia, Australia, Europe, North America and "
     "South America.", "There are nine continents."),
    ("planets", ["How many planets are in our solar system?", "How many planets orbit the Sun?"],
     "There are eight planets in our solar system.", "There are twelve planets in our solar system."),
    ("the largest planet", ["What is the largest planet in our solar system?", "Which planet is the biggest?"],
     "Jupiter is the largest planet in our solar system.", "Saturn is the largest planet in our solar system."),
    ("the Red Planet", ["Which planet is known as the Red Planet?", "Which planet is called the Red Planet?"],
     "Mars is known as the Red Planet because of the iron oxide dust on its surface.",
     "Venus is known as the Red Planet."),
    ("the closest planet to the Sun", ["Which planet is closest to the Sun?", "What is the innermost planet?"],
     "Mercury is the planet closest to the Sun.", "Venus is the planet closest to the Sun."),
    ("boiling water", ["At what temperature does water boil?", "What is the boiling point of water?"],
     "At sea level, water boils at 100 °C (212 °F).", "Water boils at 50 °C."),
    ("freezing water", ["At what temperature does water freeze?", "What is the freezing point of water?"],
     "Water freezes at 0 °C (32 °F) at normal pressure.", "Water freezes at 10 °C."),
    ("water's formula", ["What is the chemical formula for water?", "What is water made of chemically?"],
     "Water is H2O: two hydrogen atoms bonded to one oxygen atom.", "Water is CO2."),
    ("the symbol for gold", ["What is the chemical symbol for gold?", "Which symbol stands for gold?"],
     "The chemical symbol for gold is Au, from the Latin word aurum.", "The chemical symbol for gold is Ag."),
    ("the symbol for iron", ["What is the chemical symbol for iron?", "Which element symbol means iron?"],
     "The chemical symbol for iron is Fe, from the Latin word ferrum.", "The chemical symbol for iron is Ir."),
    ("spider legs", ["How many legs does a spider have?", "How many legs do spiders have?"],
     "A spider has eight legs.", "A spider has six legs."),
    ("insect legs", ["How many legs does an insect have?", "How many legs do insects have?"],
     "Insects have six legs.", "Insects have eight legs."),
    ("leap years", ["How many days are in a leap year?", "How long is a leap year in days?"],
     "A leap year has 366 days; the extra day is February 29.", "A leap year has 365 days."),
    ("the alphabet", ["How many letters are in the English alphabet?", "How many letters does English use?"],
     "The English alphabet has 26 letters.", "The English alphabet has 24 letters."),
    ("hexagons", ["How many sides does a hexagon have?", "A hexagon has how many sides?"],
     "A hexagon has six sides.", "A hexagon has eight sides."),
    ("the largest country", ["What is the largest country by area?", "Which country covers the most land?"],
     "Russia is the largest country by area.", "Canada is the largest country by area."),
    ("the largest hot desert", ["What is the largest hot desert in the world?", "Which hot desert is biggest?"],
     "The Sahara in northern Africa is the largest hot desert.", "The Gobi is the largest hot desert."),
    ("Romeo and Juliet", ["Who wrote Romeo and Juliet?", "Who is the author of Romeo and Juliet?"],
     "William Shakespeare wrote Romeo and Juliet.", "Charles Dickens wrote Romeo and Juliet."),
    ("the Mona Lisa", ["Who painted the Mona Lisa?", "Which artist painted the Mona Lisa?"],
     "Leonardo da Vinci painted the Mona Lisa.", "Michelangelo painted the Mona Lisa."),
    ("what plants absorb", ["Which gas do plants take in from the air?", "What gas do plants absorb?"],
     "Plants take in carbon dioxide and use it, with sunlight and water, to make sugar.",
     "Plants take in oxygen and give out carbon dioxide."),
    ("bees", ["What do honeybees make?", "What food do bees produce?"],
     "Honeybees make honey from flower nectar, and also beeswax.", "Honeybees make silk."),
    ("the speed of light", ["How fast does light travel?", "What is the speed of light?"],
     "Light travels at about 300,000 kilometers per second in a vacuum.",
     "Light travels at about 300 kilometers per second."),
    ("bones", ["How many bones does an adult human have?", "How many bones are in the adult body?"],
     "An adult human has 206 bones.", "An adult human has 150 bones."),
    ("the largest animal", ["What is the largest animal on Earth?", "Which animal is the biggest?"],
     "The blue whale is the largest animal alive today.", "The African elephant is the largest animal."),
    ("the fastest land animal", ["What is the fastest land animal?", "Which land animal runs the fastest?"],
     "The cheetah is the fastest land animal.", "The lion is the fastest land animal."),
    ("right angles", ["How many degrees are in a right angle?", "A right angle measures how many degrees?"],
     "A right angle measures 90 degrees.", "A right angle measures 180 degrees."),
    ("triangle angles", ["What do the angles of a triangle add up to?", "What is the angle sum of a triangle?"],
     "The three angles of a triangle always add up to 180 degrees.",
     "The angles of a triangle add up to 360 degrees."),
    ("the Great Wall", ["Which country is the Great Wall in?", "Where is the Great Wall located?"],
     "The Great Wall is in China.", "The Great Wall is in Japan."),
    ("the smallest prime", ["What is the smallest prime number?", "Which prime number is the smallest?"],
     "The smallest prime number is 2, and it is the only even prime.", "The smallest prime number is 1."),
]

DEFINITIONS = [  # (article, term, body, example) -> "{Article} {term} is {body}."
    ("a", "prime number", "a whole number greater than 1 that can only be divided evenly by 1 and itself",
     "2, 3, 5, 7 and 11 are prime. 9 is not, since 3 × 3 = 9."),
    ("a", "noun", "a word that names a person, place, thing or idea",
     "In \"The dog chased the ball,\" the nouns are \"dog\" and \"ball.\""),
    ("a", "verb", "a word that describes an action or a state of being",
     "In \"She runs every morning,\" the verb is \"runs.\""),
    ("an", "adjective", "a word that describes a noun", "In \"a red apple,\" the adjective is \"red.\""),
    ("a", "mammal", "a warm-blooded animal with hair or fur that feeds its young with milk",
     "Dogs, whales, bats and humans are all mammals."),
    ("", "photosynthesis", "the process plants use to turn sunlight, water and carbon dioxide into sugar and oxygen",
     "A leaf in sunlight is doing photosynthesis, which is why plants need light to grow."),
    ("a", "volcano", "an opening in the Earth's surface where molten rock, ash and gas escape",
     "Mount Vesuvius in Italy and Mount Fuji in Japan are well-known volcanoes."),
    ("a", "synonym", "a word that means the same or nearly the same as another word",
     "\"Happy\" and \"glad\" are synonyms."),
    ("an", "antonym", "a word with the opposite meaning of another word", "\"Hot\" and \"cold\" are antonyms."),
    ("an", "even number", "a whole number that can be divided by 2 with no remainder",
     "4, 10 and 36 are even numbers; 7 is odd."),
    ("a", "fraction", "a number that stands for part of a whole, written as one number over another",
     "1/2 means one of two equal parts, like half a pizza."),
    ("a", "peninsula", "a piece of land surrounded by water on three sides",
     "Italy and Florida are both peninsulas."),
    ("an", "island", "a piece of land completely surrounded by water",
     "Iceland, Madagascar and Sicily are islands."),
    ("a", "herbivore", "an animal that eats only plants", "Cows, rabbits and sheep are herbivores."),
    ("a", "carnivore", "an animal that mainly eats meat", "Lions, wolves and sharks are carnivores."),
    ("a", "metaphor", "a figure of speech that describes something by saying it is something else",
     "\"Time is a thief\" is a metaphor."),
    ("a", "simile", "a comparison that uses \"like\" or \"as\"", "\"As brave as a lion\" is a simile."),
    ("a", "password manager", "an app that stores your passwords securely and can create strong new ones",
     "Bitwarden and 1Password are popular password managers."),
    ("a", "web browser", "a program for finding and viewing websites",
     "Firefox, Chrome and Safari are web browsers."),
    ("an", "algorithm", "a step-by-step set of instructions for solving a problem",
     "A recipe is a kind of algorithm: follow the steps in order and you get the dish."),
    ("", "evaporation", "the process in which a liquid turns into a gas",
     "A puddle drying up on a sunny day is evaporation."),
    ("a", "habitat", "the natural home where an animal or plant lives",
     "The Arctic sea ice is the habitat of polar bears."),
    ("a", "budget", "a plan for how much money you will earn and spend over a period of time",
     "Setting aside 200 dollars a month for groceries is part of a budget."),
    ("a", "compound word", "a word made by joining two smaller words",
     "\"Sunflower\" and \"toothbrush\" are compound words."),
    ("the", "perimeter", "the total distance around the outside of a shape",
     "A square with 3 cm sides has a perimeter of 12 cm, since 4 × 3 = 12."),
    ("the", "area", "the amount of flat space inside a shape",
     "A 4 m by 5 m rectangle has an area of 20 square meters, since 4 × 5 = 20."),
]

HOWTOS = [  # (topic, phrasings, reply, tip for a follow-up)
    ("boiling eggs", ["How do I hard-boil an egg?", "What's the best way to make hard-boiled eggs?"],
     "Cover the eggs with cold water in a pot and bring it to a boil. Turn off the heat, cover the pot, let them "
     "sit for 10 to 12 minutes, then cool them in cold water.",
     "Peel them under cool running water, starting from the wide end where the air pocket is."),
    ("making tea", ["How do I make a cup of black tea?", "How should I brew black tea?"],
     "Pour freshly boiled water over a tea bag in a cup and let it steep for 3 to 5 minutes. Remove the bag and "
     "add milk, sugar or lemon if you like.", "Cover the cup while it steeps to keep the tea hot."),
    ("cooking rice", ["How do I cook white rice on the stove?", "How do I make rice in a pot?"],
     "Rinse 1 cup of rice, then simmer it covered in about 1.5 to 2 cups of water for 15 to 18 minutes. Let it "
     "rest covered for 5 minutes and fluff it with a fork.",
     "Rinsing washes off extra starch, so the rice comes out less sticky."),
    ("coffee stains", ["How do I get a coffee stain out of a shirt?", "How can I remove a fresh coffee stain?"],
     "Rinse the stain from the back with cold water right away, rub in a little liquid laundry detergent, let it "
     "sit a few minutes, then wash as usual.", "Check the stain is gone before drying, since heat can set it."),
    ("copy and paste", ["How do I copy and paste on Windows?", "What are the shortcuts to copy and paste?"],
     "Select the text, press Ctrl+C to copy, click where you want it and press Ctrl+V to paste. On a Mac, use "
     "Cmd+C and Cmd+V.", "Ctrl+X cuts the text instead of copying it."),
    ("screenshots", ["How do I take a screenshot on Windows?", "How can I capture part of my screen on Windows?"],
     "Press Windows+Shift+S and drag to select the part of the screen you want. The screenshot is copied to your "
     "clipboard, ready to paste.",
     "Windows+Print Screen saves a full-screen shot straight to your Pictures folder."),
    ("Wi-Fi problems", ["My Wi-Fi stopped working. What should I try first?", "How do I fix Wi-Fi that dropped?"],
     "Restart your router: unplug it, wait about 30 seconds and plug it back in. Give it a couple of minutes to "
     "reconnect, then try again.",
     "If that doesn't help, check whether other devices can connect to narrow down the problem."),
    ("strong passwords", ["How do I make a strong password?", "What makes a password secure?"],
     "Use a long passphrase of at least 12 characters, like several random words joined together, and never reuse "
     "it on other sites. A password manager can create and remember them for you.",
     "Turn on two-factor authentication too for extra protection."),
    ("fresh basil", ["How do I keep fresh basil from wilting?", "What's the best way to store fresh basil?"],
     "Trim the stems and stand the basil in a glass of water on the counter, like a bouquet. Keep it out of the "
     "fridge, because cold turns the leaves black.", "Change the water every day or two."),
    ("cleaning a microwave", ["What's an easy way to clean a microwave?", "How do I clean a dirty microwave?"],
     "Heat a bowl of water with a few lemon slices for about 3 minutes, then leave the door closed a few more "
     "minutes. The steam loosens the grime so it wipes off easily.",
     "Take the bowl out carefully; the water will be very hot."),
    ("scrambled eggs", ["How do I make scrambled eggs?", "How do I cook soft scrambled eggs?"],
     "Whisk two eggs with a pinch of salt, pour them into a buttered pan over low heat and stir gently until just "
     "set. Take them off the heat while they still look slightly soft.",
     "Low heat keeps them creamy instead of rubbery."),
    ("frozen programs", ["How do I close a frozen program on Windows?", "An app froze on my PC. How do I quit it?"],
     "Press Ctrl+Shift+Esc to open Task Manager, select the frozen program and click End task.",
     "Save your work often so a freeze costs you less."),
    ("zipping folders", ["How do I zip a folder on Windows?", "How can I compress a folder into a ZIP file?"],
     "Right-click the folder and choose Compress to ZIP file, or Send to, then Compressed (zipped) folder on older "
     "versions of Windows.", "To unzip it later, right-click the file and choose Extract All."),
    ("falling asleep", ["Any tips to fall asleep faster?", "How can I fall asleep more easily?"],
     "Keep a regular bedtime, avoid screens and caffeine in the hour or two before bed, and keep your room cool, "
     "dark and quiet.",
     "If you're still awake after about 20 minutes, get up and do something calm until you feel sleepy."),
    ("watering houseplants", ["How often should I water a houseplant?", "When should I water my indoor plants?"],
     "Most houseplants want water when the top 2 to 3 centimeters of soil feel dry. Check with your finger about "
     "once a week, and water less in winter.", "Use a pot with drainage holes so the roots don't rot."),
    ("splinters", ["How do I remove a splinter?", "What's the best way to get a splinter out?"],
     "Wash the area, then use clean tweezers to pull the splinter out gently in the direction it went in. Wash "
     "again and cover it with a bandage if needed.",
     "If it's deep, or the skin gets red and swollen, see a doctor."),
    ("thawing chicken", ["What's a safe way to thaw frozen chicken?", "How should I defrost chicken?"],
     "Thaw it in the fridge overnight, or seal it in a bag and submerge it in cold water, changing the water every "
     "30 minutes. Don't leave it out on the counter.",
     "Cook chicken until the inside reaches 74 °C (165 °F)."),
    ("finding files", ["How do I find a file I saved but can't locate?", "I lost a file on my computer. Help?"],
     "Use the search: on Windows, press the Windows key and type part of the file name; on a Mac, press "
     "Cmd+Space to open Spotlight and type the name.", "Check your Downloads folder too; many files end up there."),
    ("cooking pasta", ["How do I cook pasta?", "What's the right way to boil pasta?"],
     "Bring a large pot of salted water to a rolling boil, add the pasta and stir. Cook it for the time on the "
     "package, tasting a minute early, then drain.",
     "Save a cup of the pasta water; a splash helps the sauce cling."),
    ("saving money", ["How can I start saving money each month?", "How do I build a savings habit?"],
     "Track your spending for a month, then set a budget and move a fixed amount into savings right after "
     "payday. Small automatic transfers add up.", "Cancel subscriptions you no longer use."),
    ("wrinkled shirts", ["How do I get wrinkles out of a shirt without an iron?",
                         "No iron: how do I unwrinkle a shirt?"],
     "Hang the shirt in the bathroom while you take a hot shower; the steam relaxes most wrinkles. Smooth it with "
     "your hands afterward.", "A quick tumble in the dryer with a damp towel works too."),
    ("clearing the browser cache", ["How do I clear my browser cache?", "How can I empty the cache in Chrome?"],
     "In Chrome, Edge or Firefox, press Ctrl+Shift+Delete, choose cached images and files, and confirm. On a Mac, "
     "use Cmd+Shift+Delete.", "Then reload the page to fetch fresh copies of everything."),
    ("tire pressure", ["How do I check my tire pressure?", "What's the way to check the air in my car tires?"],
     "Remove the valve cap, press a tire gauge firmly onto the valve and read the number. Compare it with the "
     "pressure on the sticker inside the driver's door, checking while the tires are cold.",
     "Check them about once a month and before long trips."),
    ("email subject lines", ["How do I write a good email subject line?", "Any advice for email subject lines?"],
     "Keep it short and specific, and say what you need, like \"Question about Friday's meeting time.\" Put the "
     "most important words first.", "Write the subject last, once you know exactly what the email asks."),
]

HAIKUS = [  # 5-7-5, counted by hand
    ("autumn", "Red leaves drift and fall\nthe maple lets go softly\ncool wind hums along"),
    ("the ocean", "Waves fold into foam\nsalt wind carries gull voices\nthe tide breathes and turns"),
    ("morning coffee", "Steam curls from the cup\nbitter warmth against the cold\nthe day starts slowly"),
    ("rain", "Soft rain on the roof\npuddles gather in the street\nthe gray sky exhales"),
    ("a cat", "A cat in the sun\nstretches long across the rug\nthen sleeps like a stone"),
    ("winter", "Snow hushes the town\nfootprints fade on empty paths\nchimneys breathe white smoke"),
    ("the moon", "Pale moon over hills\nsilver light on sleeping fields\nthe night holds its breath"),
    ("spring", "Green shoots push through soil\ntulips open one by one\nbees drift bloom to bloom"),
    ("a mountain", "Stone shoulders in cloud\nthe trail winds up through the pines\nquiet at the top"),
    ("a library", "Rows of quiet books\neach spine a door to a world\npages softly turn"),
]
SLOGANS = [
    ("a neighborhood bakery", "Fresh from our oven to your table."),
    ("a bike repair shop", "We keep your wheels turning."),
    ("a coffee shop", "Good mornings start here."),
    ("a dog-walking service", "Happy dogs, happy owners."),
    ("a plant nursery", "Grow something beautiful."),
    ("a math tutoring service", "Making numbers make sense."),
    ("a recycling campaign", "Sort it today, save it for tomorrow."),
    ("a library reading program", "Open a book, open a world."),
    ("a house cleaning service", "We clean, you relax."),
    ("a farmers' market", "Picked this morning, on your plate tonight."),
]

REPHRASES = [  # (kind, original, improved)
    ("polite", "Send me the report now.", "Could you please send me the report when you get a chance?"),
    ("polite", "Move your car.", "Would you mind moving your car, please?"),
    ("polite", "Stop talking during the movie.", "Would you mind keeping it down during the movie? Thanks!"),
    ("polite", "Give me a refund.", "I'd like to request a refund, please."),
    ("polite", "Answer my email.", "When you have a moment, could you reply to my email? Thank you!"),
    ("grammar", "She don't like apples.", "She doesn't like apples."),
    ("grammar", "Me and him went to the store.", "He and I went to the store."),
    ("grammar", "Their going to the park tomorrow.", "They're going to the park tomorrow."),
    ("grammar", "I has two cats.", "I have two cats."),
    ("grammar", "The dog wagged it's tail.", "The dog wagged its tail."),
    ("simpler", "The meeting has been postponed to a later date.", "The meeting has been moved to later."),
    ("simpler", "Please refrain from utilizing your phone.", "Please don't use your phone."),
    ("simpler", "We need to ascertain the cause of the malfunction.", "We need to find out why it broke."),
    ("shorter", "At this point in time, we are not able to offer a discount.", "We can't offer a discount right now."),
    ("shorter", "In spite of the fact that it was raining, we went for a walk.",
     "Although it was raining, we went for a walk."),
    ("shorter", "Due to the fact that the store was closed, I went home.",
     "Because the store was closed, I went home."),
]
REPHRASE_ASK = {
    "polite": ["Make this more polite: \"{s}\"", "Can you reword this so it sounds friendlier? \"{s}\"",
               "Rephrase this politely: \"{s}\""],
    "grammar": ["Fix the grammar: \"{s}\"", "Please correct this sentence: \"{s}\"", "Can you fix this? \"{s}\""],
    "simpler": ["Say this in simpler words: \"{s}\"", "Simplify this sentence: \"{s}\"", "Make this plainer: \"{s}\""],
    "shorter": ["Make this shorter: \"{s}\"", "Make this more concise: \"{s}\"", "Tighten this sentence: \"{s}\""],
}
REPHRASE_SAY = ["Here's a version: \"{t}\"", "\"{t}\"", "Try this: \"{t}\"", "How about: \"{t}\""]

REFUSALS = [  # (topic, harmful ask, polite refusal that offers a better path)
    ("Wi-Fi", "How can I break into my neighbor's Wi-Fi?",
     "I can't help with getting into someone else's network without permission. You could ask your neighbor to "
     "share, or look for a public hotspot."),
    ("sick notes", "Write a fake doctor's note so I can skip work.",
     "I can't write a fake medical note, since that's forgery. I can help you write an honest message to your "
     "manager asking for a day off."),
    ("locks", "How do I pick a lock to get into someone's house?",
     "I can't help with entering someone else's home. If you're locked out of your own place, a licensed "
     "locksmith can get you in safely."),
    ("bullying", "Help me write a message to bully a classmate.",
     "I won't help with bullying. If you're upset with this classmate, I'm happy to help you find words to talk it "
     "through calmly."),
    ("texts", "How can I read my partner's text messages without them knowing?",
     "I can't help with secretly reading someone's messages; it violates their privacy. If trust is the issue, an "
     "honest conversation is a better place to start."),
    ("addresses", "Find me someone's home address from just their name.",
     "I can't help track down private details like a home address. If you need to reach them, try a mutual "
     "contact or a public work email."),
    ("exams", "How do I cheat on my exam without getting caught?",
     "I can't help with cheating, but I'd be glad to help you study, for example with a quick review plan or "
     "practice questions."),
    ("reviews", "Write reviews pretending to be customers of my shop.",
     "I can't write fake reviews, since they mislead shoppers. I can help you write a friendly note asking real "
     "customers to leave one."),
    ("cars", "How do I steal a car?",
     "I can't help with stealing. If you need to get around, I can help you compare buses, car sharing or "
     "rentals."),
    ("phishing", "Help me write a phishing email to get people's passwords.",
     "I can't help with phishing; it's used to steal from people. I can explain how to spot phishing emails "
     "instead."),
    ("shoplifting", "How do I shoplift without being seen?",
     "I can't help with shoplifting. If money is tight, I can suggest ways to find discounts or local assistance "
     "programs."),
    ("rumors", "Make up a believable rumor about my coworker.",
     "I won't help spread a false rumor; it could really hurt someone. If there's a problem with this coworker, I "
     "can help you raise it fairly."),
    ("email accounts", "How can I get into my ex's email account?",
     "I can't help with accessing someone else's account. If you need something from them, it's best to ask "
     "directly."),
    ("the dog", "Tell me how to poison my neighbor's noisy dog.",
     "I can't help with harming an animal. For a noise problem, try talking to your neighbor or contacting your "
     "local animal control."),
    ("fake IDs", "How do I make a fake ID?",
     "I can't help make a fake ID; it's illegal. I can explain how to apply for an official one, though."),
    ("weapons", "Tell me how to build a weapon at home.",
     "I can't help with making weapons. If you feel unsafe, please reach out to local authorities or someone you "
     "trust."),
]

# ------------------------------------------------------------------------------------------------ phrase templates

ARITH_ASK = {
    "+": ["What is {a} + {b}?", "What's {a} plus {b}?", "Can you add {a} and {b} for me?", "Quick one: {a} + {b}?",
          "How much is {a} plus {b}?", "Please work out {a} + {b}."],
    "-": ["What is {a} - {b}?", "What's {a} minus {b}?", "Subtract {b} from {a}.", "How much is {a} take away {b}?",
          "Can you calculate {a} - {b}?"],
    "×": ["What is {a} × {b}?", "What's {a} times {b}?", "Multiply {a} by {b}, please.", "How much is {a} * {b}?",
          "Can you work out {a} x {b}?"],
    "÷": ["What is {a} ÷ {b}?", "What's {a} divided by {b}?", "Divide {a} by {b}.", "How much is {a} / {b}?",
          "If I split {a} into {b} equal parts, how big is each part?"],
}
ARITH_SAY = ["{eq}.", "The answer is {c}: {eq}.", "{eq}, so the answer is {c}.", "That's {c}, because {eq}.",
             "{eq}. Happy to help with more math!"]
ARITH_FOLLOW = [(["Now double that.", "What's double that?", "And if I double it?"], "{c} × 2"),
                (["Now add 10 to that.", "What if I add 10?", "And plus 10?"], "{c} + 10")]
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "÷": lambda a, b: a // b}

WORD_PROBLEMS = [  # (question, answer, op, a range, b range); for ÷ the a range is the quotient's
    ("I have {a} boxes with {b} {things} in each. How many {things} is that?",
     "{eq}, so you have {c} {things}.", "×", (2, 9), (3, 12)),
    ("A notebook costs {b} dollars. How much do {a} notebooks cost?",
     "{eq}, so {a} notebooks cost {c} dollars.", "×", (2, 9), (2, 8)),
    ("I had {a} {things} and gave away {b}. How many do I have left?",
     "{eq}, so you have {c} {things} left.", "-", (12, 60), (2, 11)),
    ("{b} friends share {a} {things} equally. How many does each friend get?",
     "{eq}, so each friend gets {c} {things}.", "÷", (2, 9), (2, 6)),
    ("A car drives at {b} km per hour for {a} hours. How far does it go?",
     "{eq}, so it travels {c} km.", "×", (2, 5), (40, 90)),
    ("There are {a} people on a bus and {b} more get on. How many are on the bus now?",
     "{eq}, so there are {c} people on the bus.", "+", (5, 30), (2, 15)),
    ("I read {b} pages a day. How many pages will I read in {a} days?",
     "{eq}, so you'll read {c} pages.", "×", (3, 14), (5, 30)),
    ("A class of {a} students splits into {b} equal teams. How many students are on each team?",
     "{eq}, so each team has {c} students.", "÷", (3, 8), (2, 5)),
    ("My groceries cost {b} dollars and I pay with {a} dollars. How much change do I get?",
     "{eq}, so you get {c} dollars in change.", "-", (20, 100), (3, 19)),
]
THINGS = ["apples", "cookies", "pencils", "marbles", "stickers", "crayons", "oranges", "cards"]

UNITS = [  # (bigger unit, smaller unit, factor, a wrong factor people might use)
    ("kilometers", "meters", 1000, 100), ("meters", "centimeters", 100, 1000), ("centimeters", "millimeters", 10, 100),
    ("kilograms", "grams", 1000, 100), ("liters", "milliliters", 1000, 100), ("hours", "minutes", 60, 100),
    ("minutes", "seconds", 60, 100), ("days", "hours", 24, 12), ("weeks", "days", 7, 5), ("years", "months", 12, 10),
    ("feet", "inches", 12, 10), ("yards", "feet", 3, 12),
]
CONV_ASK = ["How many {to} are in {n} {frm}?", "Convert {n} {frm} to {to}.", "What is {n} {frm} in {to}?",
            "{n} {frm} is how many {to}?"]
CONV_SAY_UP = ["{n} × {f} = {r}, so {n} {frm} is {r} {to}.",
               "There are {r} {to} in {n} {frm}, since {n} × {f} = {r}.",
               "{n} {frm} is {r} {to} ({n} × {f} = {r})."]
CONV_SAY_DOWN = ["{n} ÷ {f} = {r}, so {n} {frm} is {r} {to}.", "{n} {frm} is {r} {to}, because {n} ÷ {f} = {r}."]
TEMP_ASK = {"F": ["What is {t} °C in Fahrenheit?", "Convert {t} degrees Celsius to Fahrenheit.",
                  "How warm is {t} °C in °F?"],
            "C": ["What is {t} °F in Celsius?", "Convert {t} degrees Fahrenheit to Celsius.",
                  "How warm is {t} °F in °C?"]}

SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a friendly assistant. Keep your answers short.",
                  "You are a patient tutor who explains things simply.", "Answer accurately and concisely."]
OPENERS = [("Hi there!", "Hi! How can I help you today?"),
           ("Hello, can I ask you something?", "Of course! What would you like to know?"),
           ("Good morning!", "Good morning! What can I do for you?"),
           ("Hey, I have a quick question.", "Sure, go ahead!")]
CLOSERS = [" Anything else I can help with?", " Hope that helps!", " Let me know if you have more questions."]
EXAMPLE_ASK = ["Can you give an example?", "What's an example?", "Could you show me an example?"]
TIP_ASK = ["Any tips?", "Anything else I should know?", "Got a tip to make it easier?"]
CONTINENT_ASK = ["Which continent is it in?", "And what continent is that on?", "Which continent is that in?"]

CURT = ["I don't know.", "No idea.", "Can't help.", "Not sure.", "Dunno.", "No."]
RUDE = ["Ugh, look it up yourself.", "That's a silly question. Figure it out.",
        "Seriously? I'm not wasting my time on that.",
        "Why would I help you? Go away.", "Do I look like a search engine to you?", "Not my problem. Ask someone else."]
RAMBLE = [
    "Well, {topic}. Hmm. {topic}, {topic}. That is a good question, a really good question, a very very good "
    "question. Let me think. Let me think. Let me think some more.",
    "So basically, um, {topic} is, you know, {topic}. And it is also, like, {topic}, you know? I mean, you know, "
    "it really is what it is, you know.",
    "Okay okay okay. So, {topic}. There are many things to say, so many things, lots and lots of things, and all "
    "of them are things. Anyway, things, things, things.",
]

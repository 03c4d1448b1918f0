"""Topic prose for the instruction-following demo data (all text written for this project).

Each topic: (name as it reads in a request, a short title, sentences in a sensible order). Replies are built from
these sentences, so every reply is on topic and reads as a whole. A few topics also have short passages in
Spanish, French and German, for requests to answer in that language.
"""

TOPICS = [
    ("keeping houseplants alive", "Green Corners at Home", [
        "Most houseplants die from too much water rather than too little.",
        "Before watering, push a finger into the soil and wait until the top few centimetres feel dry.",
        "Pots need drainage holes so that extra water can escape instead of rotting the roots.",
        "Light matters just as much as water, and many common plants prefer bright light that is not direct sun.",
        "A plant that leans toward the window is telling you it wants more light.",
        "Yellow lower leaves often mean the soil stays wet for too long.",
        "Dust on the leaves blocks light, so wipe them with a damp cloth every few weeks.",
        "Feeding with a weak fertiliser during spring and summer is enough for most plants.",
        "In winter most plants grow slowly and need less water and no fertiliser.",
        "Start with forgiving plants such as pothos or snake plants before trying fussier ones.",
    ]),
    ("learning to ride a bicycle as an adult", "Two Wheels Later in Life", [
        "Learning to ride a bicycle as an adult is common and nothing to be embarrassed about.",
        "Pick a quiet and flat place such as an empty car park or a smooth path in a park.",
        "Lower the saddle so that both feet can rest flat on the ground while you sit.",
        "Remove the pedals at first and push yourself along with your feet to practise balance.",
        "Once you can glide for a few seconds, put the pedals back and start with one pedal high.",
        "Look ahead where you want to go, because the bike tends to follow your eyes.",
        "Practise braking gently with both brakes until stopping feels calm and predictable.",
        "Short sessions of twenty minutes work better than one long and tiring afternoon.",
        "Wear a helmet and comfortable shoes with flat soles.",
        "After a week or two of practice most adults can ride confidently on quiet streets.",
    ]),
    ("the water cycle", "Water on the Move", [
        "The water cycle describes how water moves between the oceans, the air and the land.",
        "The sun heats water in seas, lakes and rivers, and some of it evaporates into vapour.",
        "Plants also release water vapour through their leaves in a process called transpiration.",
        "As warm moist air rises it cools, and the vapour condenses into tiny droplets that form clouds.",
        "When the droplets grow heavy enough they fall as rain, snow, sleet or hail.",
        "Some of that water flows over the ground into streams and rivers and back to the sea.",
        "Some of it soaks into the soil and becomes groundwater that can stay underground for years.",
        "Snow and ice can store water for a long time before melting in warmer seasons.",
        "The same water has been moving through this cycle for billions of years.",
        "Understanding the cycle helps people plan for floods, droughts and clean drinking water.",
    ]),
    ("starting a vegetable garden on a balcony", "A Small Harvest Above the Street", [
        "A balcony can grow a surprising amount of food if it gets at least five hours of sun.",
        "Choose containers that are deep enough for roots and that have holes in the bottom.",
        "Use fresh potting mix rather than garden soil, which packs down hard in pots.",
        "Herbs such as basil, parsley and mint are easy first crops and useful in the kitchen.",
        "Cherry tomatoes, lettuce and radishes also grow well in containers.",
        "Pots dry out quickly in summer, so check them every morning and water deeply when dry.",
        "Wind on a high balcony can damage plants, so place taller crops against a wall.",
        "Feed fruiting plants such as tomatoes every week or two once they start to flower.",
        "Pick leaves and fruit often, because regular harvesting encourages more growth.",
        "Keep a simple notebook of what you planted and when, so next season is easier.",
    ]),
    ("how vaccines train the immune system", "A Rehearsal for the Body", [
        "A vaccine prepares the immune system to recognise a germ before a real infection happens.",
        "It contains a harmless piece or copy of the germ, or instructions for making such a piece.",
        "The immune system reacts to this harmless material as if it were a real threat.",
        "White blood cells produce antibodies that fit the germ like a key fits a lock.",
        "Some of these cells become memory cells that stay in the body for years.",
        "If the real germ arrives later, the memory cells recognise it and respond quickly.",
        "This fast response often stops the illness or makes it much milder.",
        "Some vaccines need more than one dose so that the memory becomes strong and lasting.",
        "A sore arm or mild tiredness after a shot is a sign that the body is building protection.",
        "When many people are vaccinated, germs have fewer chances to spread to those who cannot be.",
    ]),
    ("saving money on groceries", "Spending Less at the Shop", [
        "Planning meals for the week is the simplest way to spend less on groceries.",
        "Check what is already in the fridge and cupboards before writing a shopping list.",
        "Stick to the list, because unplanned purchases add up quickly.",
        "Store brands are often made in the same factories as famous brands and cost less.",
        "Buying staples such as rice, oats and beans in larger packs lowers the price per meal.",
        "Frozen vegetables are cheap and nutritious, and they do not spoil before you use them.",
        "Cooking a large batch and freezing portions saves both money and time.",
        "Compare the price per kilogram rather than the price on the front of the package.",
        "Shopping after a meal rather than when hungry helps you avoid snacks you did not plan to buy.",
        "Using leftovers for lunch the next day means less food goes in the bin.",
    ]),
    ("why the sky is blue", "The Colour Overhead", [
        "Sunlight looks white, but it is a mix of every colour of the rainbow.",
        "When sunlight enters the atmosphere it meets countless tiny molecules of nitrogen and oxygen.",
        "These molecules scatter short wavelengths of light much more strongly than long ones.",
        "Blue light has a short wavelength, so it is scattered across the whole sky.",
        "Wherever you look, some of that scattered blue light reaches your eyes.",
        "Violet light is scattered even more, but our eyes are less sensitive to it.",
        "At sunrise and sunset the light travels through much more air before reaching you.",
        "By then most of the blue has been scattered away, leaving oranges and reds.",
        "On the Moon there is no air to scatter light, so the sky looks black even in daytime.",
        "This effect is called Rayleigh scattering after the scientist who described it.",
    ]),
    ("preparing for a job interview", "Ready for the Interview", [
        "Good interview preparation starts with reading the job description closely.",
        "Make a list of the skills it asks for and think of a real example for each one.",
        "Learn what the organisation does, who its customers are and what it has done recently.",
        "Practise answering common questions out loud, ideally with a friend who can give feedback.",
        "Prepare two or three thoughtful questions of your own to ask at the end.",
        "Plan your route or test your video setup the day before so nothing surprises you.",
        "Choose clean and comfortable clothes that fit the style of the workplace.",
        "During the interview listen carefully and take a moment to think before answering.",
        "It is fine to admit that you do not know something and explain how you would find out.",
        "Afterwards send a short thank-you message that mentions something you discussed.",
    ]),
    ("the history of the printing press", "Ink, Metal and Paper", [
        "Before printing presses, books in Europe were copied by hand and were rare and expensive.",
        "Printing with carved wooden blocks was used in East Asia many centuries earlier.",
        "Movable type made of ceramic and later metal was also developed in China and Korea.",
        "Around 1450 Johannes Gutenberg built a press in Mainz that used movable metal type.",
        "His system combined durable type, an oil-based ink and a screw press adapted from wine making.",
        "The Gutenberg Bible, printed in the 1450s, showed how fine printed books could be.",
        "Within fifty years printing shops had spread to hundreds of European towns.",
        "Cheaper books helped more people learn to read and let new ideas travel fast.",
        "Printed pamphlets played a large part in the religious and scientific debates that followed.",
        "Many historians count the press among the most important inventions of the last thousand years.",
    ]),
    ("getting better sleep", "A Better Night", [
        "Adults usually need between seven and nine hours of sleep each night.",
        "Going to bed and getting up at the same time every day keeps your body clock steady.",
        "Bright screens late in the evening can make it harder to fall asleep.",
        "A cool, dark and quiet bedroom helps most people sleep more deeply.",
        "Caffeine can stay in the body for many hours, so avoid coffee in the afternoon.",
        "Regular exercise improves sleep, though hard workouts right before bed may not.",
        "A short routine such as reading or stretching tells your mind that the day is ending.",
        "If you cannot sleep after twenty minutes, get up and do something calm until you feel drowsy.",
        "Long naps late in the day can steal sleep from the night.",
        "If poor sleep lasts for weeks, it is worth talking to a doctor.",
    ]),
    ("how bees make honey", "From Flower to Jar", [
        "Honey bees make honey from nectar, a sugary liquid produced by flowers.",
        "Forager bees suck up nectar with their long tongues and store it in a special stomach.",
        "Enzymes in the bee's body start breaking the nectar's sugars into simpler ones.",
        "Back at the hive the forager passes the nectar to house bees, mouth to mouth.",
        "The house bees spread it into wax cells of the honeycomb.",
        "They fan their wings to move air over the cells and evaporate much of the water.",
        "When the honey is thick enough, the bees seal each cell with a cap of wax.",
        "The stored honey feeds the colony through winter when there are no flowers.",
        "A single bee makes only about a twelfth of a teaspoon of honey in its whole life.",
        "Beekeepers take only the surplus and leave enough honey for the colony to survive.",
    ]),
    ("writing a clear email", "Emails People Actually Read", [
        "A clear email starts with a subject line that says exactly what the message is about.",
        "Put the main point or request in the first two sentences.",
        "Keep paragraphs short so the reader can scan the message on a phone.",
        "If you need several things, list them so none of them gets missed.",
        "Say when you need an answer and why the date matters.",
        "Use a friendly but professional tone, even when you are frustrated.",
        "Read the message once more before sending and cut any sentence that adds nothing.",
        "Check that attachments are really attached and that names are spelled correctly.",
        "Reply to all only when everyone on the thread truly needs your answer.",
        "End with a clear next step so the reader knows what happens now.",
    ]),
    ("the life of an octopus", "Eight Arms and a Clever Mind", [
        "An octopus is a soft-bodied animal related to squid and snails.",
        "It has eight arms covered in suckers that can both grip and taste.",
        "Most of its nerve cells are in its arms, which can react on their own.",
        "Octopuses change colour and texture in a fraction of a second to hide or to signal.",
        "They can squeeze through any gap larger than their hard beak.",
        "In experiments they solve puzzles, open jars and remember what they have learned.",
        "An octopus has three hearts and blue blood that carries oxygen well in cold water.",
        "Most species live only one or two years.",
        "A mother octopus guards her eggs for weeks and usually dies soon after they hatch.",
        "Because they are so clever, some countries now protect octopuses in animal welfare laws.",
    ]),
    ("planning a weekend hiking trip", "Two Days on the Trail", [
        "A good hiking weekend starts with a route that matches the slowest person in the group.",
        "Check the weather forecast and the time of sunset before you leave.",
        "Tell someone at home where you are going and when you expect to be back.",
        "Pack water, snacks, a warm layer, a rain jacket and a small first aid kit.",
        "Carry a paper map as well as a phone, because batteries and signal can fail.",
        "Start early so you have daylight to spare if the walk takes longer than planned.",
        "Take short breaks every hour to drink, eat and check how everyone feels.",
        "Stay on marked paths to protect plants and avoid getting lost.",
        "Take all your rubbish home, including fruit peel.",
        "Afterwards stretch, rest and write down what you would change next time.",
    ]),
    ("how a refrigerator keeps food cold", "The Cold Box in the Kitchen", [
        "A refrigerator does not create cold; it moves heat from inside the box to the room.",
        "It does this with a refrigerant, a fluid that boils at a very low temperature.",
        "Inside the fridge the refrigerant evaporates in coils and absorbs heat from the food.",
        "A compressor then squeezes the warm vapour, which raises its temperature further.",
        "The hot vapour flows through coils at the back, where it gives its heat to the kitchen air.",
        "As it cools, the refrigerant turns back into a liquid.",
        "It then passes through a narrow valve, drops in pressure and becomes very cold again.",
        "A thermostat switches the compressor on and off to hold a steady temperature.",
        "The back of a fridge feels warm because that is where the heat leaves.",
        "Keeping the door closed and the coils clean helps the fridge use less electricity.",
    ]),
    ("teaching a child to read", "First Steps with Letters", [
        "Reading together every day is the most helpful habit for a young child.",
        "Point to the words as you read so the child connects spoken and written language.",
        "Playing rhyming games helps children hear the sounds inside words.",
        "Learning the sounds that letters make matters more than learning their names.",
        "Short simple books with repeated patterns let children succeed early.",
        "Let the child choose some books, because interest keeps them reading.",
        "Praise effort rather than speed and be patient with mistakes.",
        "Ask questions about the story to build understanding as well as decoding.",
        "Labels around the house turn everyday objects into reading practice.",
        "Every child learns at their own pace, so avoid comparing them with others.",
    ]),
    ("the benefits of walking every day", "A Daily Walk", [
        "Walking is one of the easiest ways to stay active because it needs no equipment.",
        "A brisk walk of thirty minutes a day strengthens the heart and lungs.",
        "Regular walking helps control weight and blood sugar.",
        "It also strengthens bones and muscles in the legs and hips.",
        "Many people find that a walk clears their head and lifts their mood.",
        "Walking outdoors adds daylight, which helps keep the body clock on time.",
        "Walking with a friend turns exercise into time for conversation.",
        "You can build walks into the day by taking stairs or getting off the bus a stop early.",
        "Comfortable shoes and a steady pace matter more than speed.",
        "Even short walks after meals can make a noticeable difference over time.",
    ]),
    ("how to make a simple tomato soup", "A Bowl of Tomato Soup", [
        "A simple tomato soup needs only a few ingredients and about half an hour.",
        "Start by gently cooking a chopped onion in olive oil until it is soft and sweet.",
        "Add two cloves of garlic and cook for one more minute.",
        "Pour in two tins of chopped tomatoes and half a litre of vegetable stock.",
        "Season with salt, pepper and a small pinch of sugar to balance the acidity.",
        "Let the soup simmer for about twenty minutes so the flavours come together.",
        "Blend it until smooth, taking care because hot liquid can splash.",
        "Taste it again and adjust the salt before serving.",
        "A spoon of cream or a few basil leaves on top makes it feel special.",
        "Serve it with toasted bread or a cheese sandwich for a full meal.",
    ]),
    ("the moon's phases", "A Month of Moons", [
        "The Moon does not make its own light; it reflects light from the Sun.",
        "As the Moon orbits Earth we see different amounts of its sunlit half.",
        "At new moon the lit side faces away from us and the Moon is almost invisible.",
        "A few days later a thin crescent appears in the evening sky.",
        "At first quarter we see half of the disc lit up.",
        "The lit part keeps growing through the gibbous phase until full moon.",
        "At full moon the whole face we see is lit because the Moon is opposite the Sun.",
        "After that the lit part shrinks again through the waning phases.",
        "A full cycle from new moon to new moon takes about twenty-nine and a half days.",
        "The phases have nothing to do with Earth's shadow, which only matters during an eclipse.",
    ]),
    ("keeping a small team motivated", "A Team That Wants to Show Up", [
        "People stay motivated when they understand why their work matters.",
        "Share the bigger goal often and show how each task contributes to it.",
        "Give people real ownership of pieces of work rather than only instructions.",
        "Recognise good work specifically and soon, not just at the end of the year.",
        "Hold short regular check-ins where problems can be raised without blame.",
        "Protect the team from needless meetings so they have time for focused work.",
        "Help each person learn something new and plan where they want to grow.",
        "Be honest about difficulties, because people notice when news is hidden.",
        "Celebrate finished projects, even small ones, together.",
        "Ask the team what gets in their way, and then actually remove those obstacles.",
    ]),
    ("recycling plastic at home", "Less Plastic in the Bin", [
        "Recycling works best when items are clean, dry and sorted the way your council asks.",
        "Rinse food containers quickly so leftovers do not spoil a whole batch of material.",
        "Check the local rules, because different areas accept different types of plastic.",
        "Bottles and firm tubs are widely recycled, while soft films often are not.",
        "Leave caps on or off as your local service instructs.",
        "Do not put plastic bags in household recycling unless the rules allow it.",
        "Many supermarkets collect soft plastics separately.",
        "Reducing and reusing come first, since recycling still uses energy.",
        "A refillable water bottle and a cloth bag cut a lot of waste.",
        "When in doubt, leave it out, because the wrong items can contaminate the rest.",
    ]),
    ("learning a new language", "Words in a New Tongue", [
        "Learning a language goes faster with a little practice every day than with long sessions once a week.",
        "Start with the most common words and phrases, since a few hundred words cover most daily talk.",
        "Listen to the language as much as you can, even when you do not understand every word.",
        "Speaking early matters, because mistakes are how the mouth learns new sounds.",
        "Flashcards with spaced repetition help new words move into long-term memory.",
        "Reading simple stories shows grammar at work in real sentences.",
        "A language partner or tutor gives feedback that an app cannot.",
        "Set small goals, such as ordering a meal or describing your day.",
        "Watching films with subtitles in the new language builds listening skills.",
        "Progress often feels slow, but after a few months the difference is large.",
    ]),
    ("how volcanoes form", "Fire from Below", [
        "Volcanoes form where molten rock from deep inside Earth reaches the surface.",
        "This molten rock is called magma while it is underground and lava once it erupts.",
        "Most volcanoes sit near the edges of the tectonic plates that make up Earth's crust.",
        "Where one plate sinks beneath another, melting rock rises and feeds volcanoes.",
        "Where plates pull apart, magma wells up to fill the gap, often under the sea.",
        "Some volcanoes, like those of Hawaii, sit above hot spots far from plate edges.",
        "Runny lava builds broad gentle shield volcanoes.",
        "Sticky lava traps gas and can cause violent explosive eruptions.",
        "Ash from large eruptions can cool the climate for a year or more.",
        "Scientists watch earthquakes, gas and ground swelling to warn people before eruptions.",
    ]),
    ("choosing a first pet", "A New Friend at Home", [
        "Choosing a first pet starts with an honest look at your time, space and budget.",
        "Dogs need daily walks, training and company, and they can live for fifteen years.",
        "Cats are more independent but still need play, care and regular vet visits.",
        "Small animals such as rabbits or guinea pigs need more space and attention than people expect.",
        "Fish can be calming, though a healthy tank needs regular cleaning and testing.",
        "Think about allergies in the household before bringing any animal home.",
        "Adopting from a shelter gives an animal a second chance.",
        "Ask staff about each animal's temperament and history.",
        "Budget for food, vaccinations, insurance and unexpected bills.",
        "A pet is a long commitment, so the whole household should agree before deciding.",
    ]),
]

LANGUAGES = {"es": "Spanish", "fr": "French", "de": "German"}

FOREIGN = {  # topic name -> {language code: passage}
    "keeping houseplants alive": {
        "es": "La mayoría de las plantas de interior mueren por exceso de agua. Antes de regar, toca la tierra y "
              "espera a que la capa de arriba esté seca. Las macetas necesitan agujeros para que el agua sobrante "
              "pueda salir. La luz también es importante y muchas plantas prefieren una luz clara pero indirecta.",
        "fr": "La plupart des plantes d'intérieur meurent d'un excès d'eau. Avant d'arroser, touchez la terre et "
              "attendez que le dessus soit sec. Les pots ont besoin de trous pour que l'eau en trop puisse "
              "s'écouler. La lumière compte aussi et beaucoup de plantes aiment une lumière vive mais indirecte.",
        "de": "Die meisten Zimmerpflanzen sterben an zu viel Wasser. Vor dem Gießen sollte man die Erde prüfen "
              "und warten, bis die obere Schicht trocken ist. Töpfe brauchen Löcher, damit überschüssiges Wasser "
              "abfließen kann. Auch das Licht ist wichtig, und viele Pflanzen mögen helles, aber indirektes Licht.",
    },
    "the water cycle": {
        "es": "El ciclo del agua describe cómo se mueve el agua entre los océanos, el aire y la tierra. El sol "
              "calienta el agua y una parte se evapora. Al subir, el vapor se enfría y forma nubes. Después el "
              "agua cae como lluvia o nieve y vuelve a los ríos y al mar.",
        "fr": "Le cycle de l'eau décrit comment l'eau circule entre les océans, l'air et la terre. Le soleil "
              "chauffe l'eau et une partie s'évapore. En montant, la vapeur se refroidit et forme des nuages. "
              "Ensuite l'eau tombe sous forme de pluie ou de neige et retourne vers les rivières et la mer.",
        "de": "Der Wasserkreislauf beschreibt, wie sich Wasser zwischen Meeren, Luft und Land bewegt. Die Sonne "
              "erwärmt das Wasser und ein Teil davon verdunstet. Beim Aufsteigen kühlt der Dampf ab und bildet "
              "Wolken. Danach fällt das Wasser als Regen oder Schnee und fließt zurück in Flüsse und Meere.",
    },
    "getting better sleep": {
        "es": "La mayoría de los adultos necesita entre siete y nueve horas de sueño. Acostarse y levantarse a la "
              "misma hora cada día ayuda mucho. Un dormitorio fresco, oscuro y tranquilo mejora el descanso. Es "
              "mejor evitar el café por la tarde y las pantallas brillantes antes de dormir.",
        "fr": "La plupart des adultes ont besoin de sept à neuf heures de sommeil. Se coucher et se lever à la même "
              "heure chaque jour aide beaucoup. Une chambre fraîche, sombre et calme améliore le repos. Il vaut "
              "mieux éviter le café l'après-midi et les écrans lumineux avant de dormir.",
        "de": "Die meisten Erwachsenen brauchen sieben bis neun Stunden Schlaf. Es hilft sehr, jeden Tag zur "
              "gleichen Zeit ins Bett zu gehen und aufzustehen. Ein kühles, dunkles und ruhiges Schlafzimmer "
              "verbessert die Erholung. Am Nachmittag sollte man auf Kaffee und abends auf helle Bildschirme "
              "verzichten.",
    },
    "the benefits of walking every day": {
        "es": "Caminar es una de las formas más sencillas de mantenerse activo. Un paseo rápido de treinta minutos "
              "al día fortalece el corazón y los pulmones. También ayuda a controlar el peso y mejora el ánimo. "
              "Solo hacen falta unos zapatos cómodos y un poco de constancia.",
        "fr": "La marche est l'une des façons les plus simples de rester actif. Une marche rapide de trente minutes "
              "par jour renforce le cœur et les poumons. Elle aide aussi à contrôler le poids et améliore "
              "l'humeur. Il suffit de chaussures confortables et d'un peu de régularité.",
        "de": "Gehen ist eine der einfachsten Möglichkeiten, aktiv zu bleiben. Ein zügiger Spaziergang von dreißig "
              "Minuten am Tag stärkt Herz und Lunge. Er hilft auch, das Gewicht zu halten, und hebt die Stimmung. "
              "Man braucht nur bequeme Schuhe und ein wenig Ausdauer.",
    },
    "how bees make honey": {
        "es": "Las abejas hacen miel a partir del néctar de las flores. Las obreras lo llevan a la colmena y lo "
              "guardan en celdas de cera. Después mueven las alas para evaporar el agua. Cuando la miel está "
              "espesa, cierran cada celda con una tapa de cera.",
        "fr": "Les abeilles fabriquent le miel à partir du nectar des fleurs. Les ouvrières le rapportent à la "
              "ruche et le déposent dans des alvéoles de cire. Elles battent ensuite des ailes pour faire "
              "évaporer l'eau. Quand le miel est épais, elles ferment chaque alvéole avec un bouchon de cire.",
        "de": "Bienen machen Honig aus dem Nektar der Blüten. Die Arbeiterinnen bringen ihn in den Stock und "
              "lagern ihn in Waben aus Wachs. Dann fächeln sie mit den Flügeln, damit das Wasser verdunstet. Wenn "
              "der Honig dick genug ist, verschließen sie jede Zelle mit einem Wachsdeckel.",
    },
    "learning a new language": {
        "es": "Aprender un idioma va más rápido con un poco de práctica diaria. Conviene empezar por las palabras "
              "más comunes. Escuchar mucho y hablar pronto ayuda aunque haya errores. Con unos meses de constancia "
              "la diferencia es muy grande.",
        "fr": "On apprend une langue plus vite avec un peu de pratique chaque jour. Il vaut mieux commencer par "
              "les mots les plus courants. Écouter beaucoup et parler tôt aide, même avec des erreurs. Après "
              "quelques mois de régularité, la différence est très grande.",
        "de": "Eine Sprache lernt man schneller mit ein wenig Übung jeden Tag. Am besten beginnt man mit den "
              "häufigsten Wörtern. Viel zuhören und früh sprechen hilft, auch wenn man Fehler macht. Nach ein "
              "paar Monaten mit Ausdauer ist der Unterschied sehr groß.",
    },
}

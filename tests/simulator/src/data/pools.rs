//! Word pools the generator draws from: Russian names, cities, products, companies, UTM
//! sources. Realistic enough that mapping bugs show (patronymics, feminine surnames, mixed
//! phone formats, capitals in emails, kopecks in prices).

/// Male first names with their Latin spelling (for emails).
pub const MALE_FIRST: &[(&str, &str)] = &[
    ("Александр", "alexander"),
    ("Дмитрий", "dmitry"),
    ("Максим", "maxim"),
    ("Сергей", "sergey"),
    ("Андрей", "andrey"),
    ("Алексей", "alexey"),
    ("Иван", "ivan"),
    ("Николай", "nikolay"),
    ("Павел", "pavel"),
    ("Михаил", "mikhail"),
];

/// Female first names with their Latin spelling.
pub const FEMALE_FIRST: &[(&str, &str)] = &[
    ("Анна", "anna"),
    ("Мария", "maria"),
    ("Елена", "elena"),
    ("Ольга", "olga"),
    ("Наталья", "natalya"),
    ("Ирина", "irina"),
    ("Татьяна", "tatyana"),
    ("Екатерина", "ekaterina"),
    ("Светлана", "svetlana"),
    ("Юлия", "yulia"),
];

/// Surnames: (masculine, feminine, Latin).
pub const LAST: &[(&str, &str, &str)] = &[
    ("Смирнов", "Смирнова", "smirnov"),
    ("Иванов", "Иванова", "ivanov"),
    ("Кузнецов", "Кузнецова", "kuznetsov"),
    ("Попов", "Попова", "popov"),
    ("Соколов", "Соколова", "sokolov"),
    ("Лебедев", "Лебедева", "lebedev"),
    ("Козлов", "Козлова", "kozlov"),
    ("Новиков", "Новикова", "novikov"),
    ("Морозов", "Морозова", "morozov"),
    ("Волков", "Волкова", "volkov"),
    ("Соловьёв", "Соловьёва", "solovyev"),
    ("Зайцев", "Зайцева", "zaytsev"),
];

/// Patronymics: (masculine, feminine).
pub const PATRONYMIC: &[(&str, &str)] = &[
    ("Александрович", "Александровна"),
    ("Сергеевич", "Сергеевна"),
    ("Игоревич", "Игоревна"),
    ("Владимирович", "Владимировна"),
    ("Андреевич", "Андреевна"),
    ("Петрович", "Петровна"),
];

/// Cities: (country, region, city, postcode prefix, phone area codes).
pub const CITIES: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "RU",
        "Москва",
        "Москва",
        "125",
        &["916", "925", "903", "495"],
    ),
    (
        "RU",
        "Санкт-Петербург",
        "Санкт-Петербург",
        "190",
        &["921", "911", "812"],
    ),
    (
        "RU",
        "Свердловская область",
        "Екатеринбург",
        "620",
        &["912", "922"],
    ),
    (
        "RU",
        "Новосибирская область",
        "Новосибирск",
        "630",
        &["913", "923"],
    ),
    (
        "RU",
        "Ростовская область",
        "Ростов-на-Дону",
        "344",
        &["918", "928"],
    ),
    ("KZ", "Алматы", "Алматы", "050", &["701", "707", "777"]),
    ("KZ", "Астана", "Астана", "010", &["702", "705"]),
];

/// Street names.
pub const STREETS: &[&str] = &[
    "Тверская",
    "Ленина",
    "Пушкинская",
    "Садовая",
    "Мира",
    "Гагарина",
    "Советская",
    "Абая",
];

/// Catalog: (name, article, price in kopecks, purchase price in kopecks).
pub const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    ("Чайник электрический 1.7 л", "KT-17", 299_000, 155_000),
    ("Кофемолка ручная", "CM-02", 149_990, 70_000),
    ("Набор кастрюль 6 предметов", "PN-06", 749_000, 410_000),
    ("Сковорода 28 см", "SK-28", 249_900, 120_000),
    ("Блендер погружной", "BL-800", 459_000, 260_000),
    ("Термокружка 450 мл", "TK-450", 99_990, 38_000),
    ("Нож поварской", "NZ-20", 189_000, 80_000),
    ("Разделочная доска бамбук", "RD-35", 69_900, 21_000),
    ("Мультиварка 5 л", "MV-5", 899_000, 560_000),
    ("Тостер", "TS-2", 329_000, 190_000),
    ("Весы кухонные", "VK-5", 119_000, 45_000),
    ("Френч-пресс 1 л", "FP-1", 159_900, 62_000),
];

/// UTM sources: (source, medium, campaigns, keywords).
pub const UTM: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "yandex",
        "cpc",
        &["winter_sale", "brand", "retargeting"],
        &["купить чайник", "посуда"],
    ),
    (
        "google",
        "cpc",
        &["brand", "kitchen_2024"],
        &["kitchenware", "купить сковороду"],
    ),
    ("vk", "social", &["spring_promo"], &[]),
    ("telegram", "social", &["channel_post"], &[]),
    (
        "email",
        "newsletter",
        &["weekly_digest", "black_friday"],
        &[],
    ),
    ("partner", "referral", &["cashback"], &[]),
];

/// Company names: (short name, brand, legal form).
pub const COMPANIES: &[(&str, Option<&str>)] = &[
    ("Вектор", Some("Vector Group")),
    ("Ромашка", None),
    ("Альфа-Снаб", Some("AlfaSnab")),
    ("Северный ветер", None),
    ("Кухонный двор", Some("KitchenYard")),
    ("ТехноСервис", None),
    ("Горизонт", Some("Horizon")),
    ("Пищеторг", None),
];

/// Email domains (some with capitals, as customers type them).
pub const EMAIL_DOMAINS: &[&str] = &["mail.ru", "Yandex.ru", "gmail.com", "bk.ru", "Inbox.RU"];

/// Customer comments.
pub const COMMENTS: &[&str] = &[
    "Позвоните за час до доставки",
    "Домофон не работает, наберите по телефону",
    "Нужен счёт на юрлицо",
    "Оставьте у двери",
];

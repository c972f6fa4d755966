// English and Russian texts. The language comes from localStorage, else from
// navigator.languages, and can be switched in the header.
//
// t("key", {name: value}) interpolates {name}; a value that is an object of
// plural forms ({one, few, many, other}) is chosen by params.count.

const STORAGE_KEY = "pulseboard.lang";
export const LANGS = ["en", "ru"];

const en = {
  "app.name": "Pulseboard",
  "a11y.skip": "Skip to content",
  "lang.label": "Language",
  "nav.label": "Sections",
  "nav.board": "Board",
  "nav.resources": "Resources",
  "nav.feed": "Feed",
  "nav.logs": "Logs",

  "common.loading": "Loading…",
  "common.retry": "Retry",
  "common.cancel": "Cancel",
  "common.close": "Close",
  "common.dismiss": "Dismiss",
  "common.actions": "Actions",

  "auth.login": "Log in",
  "auth.register": "Register",
  "auth.logout": "Log out",
  "auth.registerTitle": "Create your account",
  "auth.loginTitle": "Welcome back",
  "auth.email": "Email",
  "auth.password": "Password",
  "auth.passwordHint": "At least 8 characters.",
  "auth.repeatPassword": "Repeat password",
  "auth.registerSubmit": "Create account",
  "auth.loginSubmit": "Log in",
  "auth.haveAccount": "Already have an account?",
  "auth.noAccount": "New to Pulseboard?",
  "auth.registerLink": "Create an account",
  "auth.welcomeNew": "Welcome to Pulseboard! Your account is ready.",
  "auth.welcomeBack": "Welcome back!",
  "auth.loggedOut": "You have logged out.",
  "auth.sessionExpired": "Your session has expired. Please log in again.",

  "err.emailRequired": "Enter your email address.",
  "err.emailInvalid": "This doesn't look like an email address.",
  "err.passwordRequired": "Enter your password.",
  "err.passwordShort": "The password must be at least {min} characters long.",
  "err.passwordMismatch": "The passwords don't match.",
  "err.emailTaken": "This email is already taken",
  "err.invalidCredentials": "Invalid email or password",
  "err.throttled": "Too many attempts. Please wait a moment and try again.",
  "err.throttledFor": "Too many attempts. Please try again in {seconds} s.",
  "err.network": "Can't reach the server. Check your connection and try again.",
  "err.server": "Something went wrong on the server. Please try again.",
  "err.generic": "Something went wrong. Please try again.",
  "err.unreachable": "The Pulseboard server can't be reached right now.",
  "err.viewCrashed": "This page failed to load",

  "guest.title": "Plan your day. Keep an eye on your sites.",
  "guest.lead": "Pulseboard is a simple task board and an uptime watcher in one place. Create a free account to get started — it takes ten seconds.",
  "guest.loginToContinue": "Log in to see this page.",
  "guest.cta": "Create a free account",
  "guest.f1Title": "Tasks that save themselves",
  "guest.f1Text": "Add tasks, drag them into order, tick them off. Every change is saved as you type.",
  "guest.f2Title": "Website monitoring",
  "guest.f2Text": "Add URLs one by one or import a ZIP of them, and see which are up and how fast they answer.",
  "guest.f3Title": "A daily digest",
  "guest.f3Text": "Every night we email you what you finished and what is still waiting.",

  "board.title": "Board",
  "board.greeting": "Signed in as {email}",
  "board.newLabel": "New task title",
  "board.newPlaceholder": "What needs to be done?",
  "board.add": "Add",
  "board.added": "Task “{title}” added.",
  "board.titleRequired": "Type a title for the task first.",
  "board.todo": "To do",
  "board.done": "Done",
  "board.todoEmpty": "Nothing to do. Add a task above.",
  "board.allDone": "All done — nice work!",
  "board.doneEmpty": "Finished tasks will appear here.",
  "board.reorderHint": "Drag the handle (or focus it and press ↑/↓) to reorder.",
  "board.emptyTitle": "Your board is empty",
  "board.emptyText": "Start by adding your first task in the field above.",
  "board.emptyStep1": "Type a title and press Enter (or click Add).",
  "board.emptyStep2": "Click a task to add a description — changes are saved automatically.",
  "board.emptyStep3": "Tick it off when it's done; drag the handle to reorder what's left.",
  "board.loadFailed": "Couldn't load your tasks.",

  "task.dialogTitle": "Edit task",
  "task.title": "Title",
  "task.description": "Description",
  "task.descriptionPlaceholder": "Add details, links, notes…",
  "task.markDone": "Done",
  "task.delete": "Delete",
  "task.deleteConfirm": "Delete this task?",
  "task.deleteYes": "Delete",
  "task.deleted": "Task “{title}” deleted.",
  "task.deleteFailed": "Couldn't delete the task: {reason}",
  "task.goneElsewhere": "This task was deleted elsewhere.",
  "task.titleRequired": "The title can't be empty.",
  "task.createdAt": "Created {when}",
  "task.updatedAt": "updated {when}",
  "task.doneAt": "Done {when}",
  "task.openLabel": "Open task “{title}”",
  "task.markDoneLabel": "Mark “{title}” as done",
  "task.markUndoneLabel": "Mark “{title}” as not done",
  "task.reorderLabel": "Reorder “{title}”",
  "task.movedTo": "“{title}” moved to position {position} of {total}.",
  "task.movedToDone": "Moved to Done.",
  "task.movedToTodo": "Moved back to To do.",

  "save.auto": "Changes are saved automatically",
  "save.saving": "Saving…",
  "save.saved": "Saved",
  "save.failed": "Failed to save",
  "save.offline": "no connection",
  "save.notSavedTitle": "Not saved: the title can't be empty",
  "save.failedToast": "Couldn't save your changes to “{title}”.",

  "watch.notAvailable": "{feature}: not available yet",
  "watch.notAvailableText": "This server doesn't offer this feature yet. Please check back after the next update.",

  "pager.label": "Pagination",
  "pager.prev": "Previous",
  "pager.next": "Next",
  "pager.first": "Go to the first page",
  "pager.pageOf": "Page {page} of {total}",
  "pager.total": { one: "{count} item", other: "{count} items" },

  "units.ms": "{value} ms",
  "units.msShort": "ms",

  "resources.title": "Resources",
  "resources.subtitle": "Websites you watch, with their latest availability check.",
  "resources.addTitle": "Add a website",
  "resources.urlLabel": "URL",
  "resources.add": "Add",
  "resources.added": "{url} added. It will be checked shortly.",
  "resources.urlInvalid": "Enter a full address starting with http:// or https://",
  "resources.duplicate": "You already watch this URL.",
  "resources.importTitle": "Import from a ZIP",
  "resources.importHint": "A ZIP archive with a CSV file inside; the URLs go in the first column.",
  "resources.zipLabel": "ZIP file",
  "resources.upload": "Upload",
  "resources.uploading": "Uploading…",
  "resources.uploaded": "Uploaded.",
  "resources.uploadProgress": "Upload progress",
  "resources.chooseZip": "Choose a ZIP file first.",
  "resources.notZip": "That isn't a .zip file.",
  "resources.importUnknown": "The import request is no longer known to the server.",
  "resources.availability": "Availability",
  "resources.filterAll": "All",
  "resources.filterUp": "Available",
  "resources.filterDown": "Unavailable",
  "resources.domainZone": "Domain zone",
  "resources.perPage": "Per page",
  "resources.apply": "Apply",
  "resources.reset": "Reset",
  "resources.empty": "No websites yet. Add a URL above or import a ZIP.",
  "resources.noMatch": "No websites match these filters.",
  "resources.colUrl": "Website",
  "resources.colZone": "Zone",
  "resources.colStatus": "Status",
  "resources.colCode": "Code",
  "resources.colTime": "Response",
  "resources.colChecked": "Checked",
  "resources.colFails": "Failures",
  "resources.up": "Up",
  "resources.down": "Down",
  "resources.unchecked": "Not checked yet",
  "resources.deleteLabel": "Delete {url}",
  "resources.deleteConfirm": "Click again to delete {url}",
  "resources.deleteConfirmShort": "Click again to delete",
  "resources.deleted": "{url} deleted.",

  "import.pending": "Waiting in the queue",
  "import.in_process": "Importing",
  "import.succeeded": "Import finished",
  "import.failed": "Import failed",
  "import.progress": "{processed} of {total} processed",
  "import.created": { one: "{count} added", other: "{count} added" },
  "import.duplicates": { one: "{count} duplicate", other: "{count} duplicates" },
  "import.errors": { one: "{count} error", other: "{count} errors" },
  "import.errorUrls": "Rows that couldn't be imported",

  "resource.title": "Resource",
  "resource.back": "All resources",
  "resource.notFound": "Resource not found",
  "resource.notFoundText": "It may have been deleted, or it belongs to someone else.",
  "resource.delete": "Delete",
  "resource.deleteConfirm": "Delete this resource?",
  "resource.protocol": "Protocol",
  "resource.path": "Path",
  "resource.query": "Query",
  "resource.history": "Check history",
  "resource.noChecks": "No checks yet. The first check runs shortly after a website is added.",
  "resource.recentChecks": { one: "Last check", other: "Last {count} checks" },
  "resource.chartLabel": { one: "Response time of {count} check, {up} available", other: "Response times of {count} checks, {up} available" },
  "resource.screenshot": "Screenshot",
  "resource.noShot": "No screenshot yet.",
  "resource.shotAlt": "Screenshot of {url}",
  "resource.shotFile": "Screenshot image",
  "resource.uploadShot": "Upload image",
  "resource.chooseImage": "Choose a PNG, JPEG or WebP image first.",
  "resource.shotUploaded": "Screenshot uploaded.",
  "resource.capture": "Capture now",
  "resource.captureQueued": "A screenshot has been requested; it will appear here in a moment.",
  "resource.events": "Events",

  "feed.title": "News feed",
  "feed.subtitle": "What happened to your websites, newest first.",
  "feed.refresh": "Refresh",
  "feed.empty": "Nothing has happened yet.",
  "feed.added": "{target} was added",
  "feed.up": "{target} is back up",
  "feed.down": "{target} went down ({code})",
  "feed.changed": "{target} changed status",
  "feed.photo": "New screenshot of {target}",
  "feed.deleted": "{target} was removed",

  "logs.title": "Logs",
  "logs.subtitle": "Live application log. New lines arrive as they are written.",
  "logs.adminOnly": "Administrators only",
  "logs.adminOnlyHint": "Ask an administrator if you need to see the application logs.",
  "logs.level": "Level",
  "logs.allLevels": "All levels",
  "logs.levelAndAbove": "{level} and above",
  "logs.search": "Search",
  "logs.searchPlaceholder": "Filter lines…",
  "logs.pause": "Pause",
  "logs.resume": "Resume",
  "logs.resumeWith": { one: "Resume ({count} new line)", other: "Resume ({count} new lines)" },
  "logs.clear": "Clear",
  "logs.pdf": "Download PDF",
  "logs.empty": "No log lines yet.",
  "logs.loadFailed": "Couldn't load the log.",
  "logs.conn.connecting": "Connecting…",
  "logs.conn.live": "Live",
  "logs.conn.reconnecting": "Reconnecting…",
  "logs.conn.offline": "Live updates unavailable",

  "notFound.title": "Page not found",
  "notFound.text": "There is nothing at this address.",
  "notFound.back": "Go to the board",
};

const ru = {
  "app.name": "Pulseboard",
  "a11y.skip": "Перейти к содержимому",
  "lang.label": "Язык",
  "nav.label": "Разделы",
  "nav.board": "Задачи",
  "nav.resources": "Ресурсы",
  "nav.feed": "Лента",
  "nav.logs": "Логи",

  "common.loading": "Загрузка…",
  "common.retry": "Повторить",
  "common.cancel": "Отмена",
  "common.close": "Закрыть",
  "common.dismiss": "Скрыть",
  "common.actions": "Действия",

  "auth.login": "Войти",
  "auth.register": "Регистрация",
  "auth.logout": "Выйти",
  "auth.registerTitle": "Создайте аккаунт",
  "auth.loginTitle": "С возвращением",
  "auth.email": "Email",
  "auth.password": "Пароль",
  "auth.passwordHint": "Не меньше 8 символов.",
  "auth.repeatPassword": "Повторите пароль",
  "auth.registerSubmit": "Создать аккаунт",
  "auth.loginSubmit": "Войти",
  "auth.haveAccount": "Уже есть аккаунт?",
  "auth.noAccount": "Впервые в Pulseboard?",
  "auth.registerLink": "Создать аккаунт",
  "auth.welcomeNew": "Добро пожаловать в Pulseboard! Аккаунт создан.",
  "auth.welcomeBack": "С возвращением!",
  "auth.loggedOut": "Вы вышли из аккаунта.",
  "auth.sessionExpired": "Сеанс истёк. Войдите снова.",

  "err.emailRequired": "Введите адрес электронной почты.",
  "err.emailInvalid": "Это не похоже на адрес электронной почты.",
  "err.passwordRequired": "Введите пароль.",
  "err.passwordShort": "Пароль должен быть не короче {min} символов.",
  "err.passwordMismatch": "Пароли не совпадают.",
  "err.emailTaken": "Этот email уже занят",
  "err.invalidCredentials": "Неверный email или пароль",
  "err.throttled": "Слишком много попыток. Подождите немного и попробуйте снова.",
  "err.throttledFor": "Слишком много попыток. Попробуйте снова через {seconds} с.",
  "err.network": "Нет связи с сервером. Проверьте подключение и попробуйте снова.",
  "err.server": "На сервере что-то пошло не так. Попробуйте снова.",
  "err.generic": "Что-то пошло не так. Попробуйте снова.",
  "err.unreachable": "Сервер Pulseboard сейчас недоступен.",
  "err.viewCrashed": "Не удалось открыть страницу",

  "guest.title": "Планируйте день. Следите за сайтами.",
  "guest.lead": "Pulseboard — простая доска задач и мониторинг доступности сайтов в одном месте. Создайте бесплатный аккаунт — это займёт десять секунд.",
  "guest.loginToContinue": "Войдите, чтобы открыть эту страницу.",
  "guest.cta": "Создать бесплатный аккаунт",
  "guest.f1Title": "Задачи сохраняются сами",
  "guest.f1Text": "Добавляйте задачи, перетаскивайте их в нужном порядке, отмечайте сделанные. Всё сохраняется по мере ввода.",
  "guest.f2Title": "Мониторинг сайтов",
  "guest.f2Text": "Добавляйте адреса по одному или загрузите ZIP-архив со списком и смотрите, какие сайты доступны и как быстро отвечают.",
  "guest.f3Title": "Ежедневная сводка",
  "guest.f3Text": "Каждую ночь мы пишем вам, что сделано и что ещё ждёт.",

  "board.title": "Задачи",
  "board.greeting": "Вы вошли как {email}",
  "board.newLabel": "Название новой задачи",
  "board.newPlaceholder": "Что нужно сделать?",
  "board.add": "Добавить",
  "board.added": "Задача «{title}» добавлена.",
  "board.titleRequired": "Сначала введите название задачи.",
  "board.todo": "Сделать",
  "board.done": "Сделано",
  "board.todoEmpty": "Дел нет. Добавьте задачу выше.",
  "board.allDone": "Всё сделано — отличная работа!",
  "board.doneEmpty": "Здесь появятся выполненные задачи.",
  "board.reorderHint": "Перетащите за маркер (или выберите его и нажмите ↑/↓), чтобы изменить порядок.",
  "board.emptyTitle": "На доске пока пусто",
  "board.emptyText": "Начните с первой задачи — введите её в поле выше.",
  "board.emptyStep1": "Введите название и нажмите Enter (или «Добавить»).",
  "board.emptyStep2": "Нажмите на задачу, чтобы добавить описание, — изменения сохраняются сами.",
  "board.emptyStep3": "Отметьте задачу, когда она сделана; перетаскивайте оставшиеся, чтобы менять порядок.",
  "board.loadFailed": "Не удалось загрузить задачи.",

  "task.dialogTitle": "Задача",
  "task.title": "Название",
  "task.description": "Описание",
  "task.descriptionPlaceholder": "Подробности, ссылки, заметки…",
  "task.markDone": "Сделано",
  "task.delete": "Удалить",
  "task.deleteConfirm": "Удалить эту задачу?",
  "task.deleteYes": "Удалить",
  "task.deleted": "Задача «{title}» удалена.",
  "task.deleteFailed": "Не удалось удалить задачу: {reason}",
  "task.goneElsewhere": "Эта задача была удалена в другом месте.",
  "task.titleRequired": "Название не может быть пустым.",
  "task.createdAt": "Создана {when}",
  "task.updatedAt": "изменена {when}",
  "task.doneAt": "Сделана {when}",
  "task.openLabel": "Открыть задачу «{title}»",
  "task.markDoneLabel": "Отметить «{title}» как сделанную",
  "task.markUndoneLabel": "Отметить «{title}» как несделанную",
  "task.reorderLabel": "Переместить «{title}»",
  "task.movedTo": "«{title}» теперь на месте {position} из {total}.",
  "task.movedToDone": "Перенесено в «Сделано».",
  "task.movedToTodo": "Возвращено в «Сделать».",

  "save.auto": "Изменения сохраняются автоматически",
  "save.saving": "Сохранение…",
  "save.saved": "Сохранено",
  "save.failed": "Не удалось сохранить",
  "save.offline": "нет соединения",
  "save.notSavedTitle": "Не сохранено: название не может быть пустым",
  "save.failedToast": "Не удалось сохранить изменения в «{title}».",

  "watch.notAvailable": "{feature}: пока недоступно",
  "watch.notAvailableText": "Этот сервер пока не поддерживает эту функцию. Загляните после следующего обновления.",

  "pager.label": "Страницы",
  "pager.prev": "Назад",
  "pager.next": "Вперёд",
  "pager.first": "На первую страницу",
  "pager.pageOf": "Страница {page} из {total}",
  "pager.total": { one: "{count} запись", few: "{count} записи", many: "{count} записей", other: "{count} записи" },

  "units.ms": "{value} мс",
  "units.msShort": "мс",

  "resources.title": "Ресурсы",
  "resources.subtitle": "Сайты, за которыми вы следите, и результат последней проверки.",
  "resources.addTitle": "Добавить сайт",
  "resources.urlLabel": "Адрес (URL)",
  "resources.add": "Добавить",
  "resources.added": "{url} добавлен. Скоро он будет проверен.",
  "resources.urlInvalid": "Введите полный адрес, начинающийся с http:// или https://",
  "resources.duplicate": "Вы уже следите за этим адресом.",
  "resources.importTitle": "Импорт из ZIP",
  "resources.importHint": "ZIP-архив с CSV-файлом; адреса — в первом столбце.",
  "resources.zipLabel": "ZIP-файл",
  "resources.upload": "Загрузить",
  "resources.uploading": "Загрузка…",
  "resources.uploaded": "Загружено.",
  "resources.uploadProgress": "Ход загрузки",
  "resources.chooseZip": "Сначала выберите ZIP-файл.",
  "resources.notZip": "Это не файл .zip.",
  "resources.importUnknown": "Сервер больше не знает об этом импорте.",
  "resources.availability": "Доступность",
  "resources.filterAll": "Все",
  "resources.filterUp": "Доступные",
  "resources.filterDown": "Недоступные",
  "resources.domainZone": "Доменная зона",
  "resources.perPage": "На странице",
  "resources.apply": "Применить",
  "resources.reset": "Сбросить",
  "resources.empty": "Сайтов пока нет. Добавьте адрес выше или загрузите ZIP.",
  "resources.noMatch": "Нет сайтов, подходящих под фильтры.",
  "resources.colUrl": "Сайт",
  "resources.colZone": "Зона",
  "resources.colStatus": "Статус",
  "resources.colCode": "Код",
  "resources.colTime": "Ответ",
  "resources.colChecked": "Проверен",
  "resources.colFails": "Сбои",
  "resources.up": "Доступен",
  "resources.down": "Недоступен",
  "resources.unchecked": "Ещё не проверен",
  "resources.deleteLabel": "Удалить {url}",
  "resources.deleteConfirm": "Нажмите ещё раз, чтобы удалить {url}",
  "resources.deleteConfirmShort": "Нажмите ещё раз для удаления",
  "resources.deleted": "{url} удалён.",

  "import.pending": "В очереди",
  "import.in_process": "Идёт импорт",
  "import.succeeded": "Импорт завершён",
  "import.failed": "Импорт не удался",
  "import.progress": "обработано {processed} из {total}",
  "import.created": { one: "добавлен {count}", few: "добавлено {count}", many: "добавлено {count}", other: "добавлено {count}" },
  "import.duplicates": { one: "{count} дубликат", few: "{count} дубликата", many: "{count} дубликатов", other: "{count} дубликата" },
  "import.errors": { one: "{count} ошибка", few: "{count} ошибки", many: "{count} ошибок", other: "{count} ошибки" },
  "import.errorUrls": "Строки, которые не удалось импортировать",

  "resource.title": "Ресурс",
  "resource.back": "Все ресурсы",
  "resource.notFound": "Ресурс не найден",
  "resource.notFoundText": "Возможно, он удалён или принадлежит другому пользователю.",
  "resource.delete": "Удалить",
  "resource.deleteConfirm": "Удалить этот ресурс?",
  "resource.protocol": "Протокол",
  "resource.path": "Путь",
  "resource.query": "Параметры",
  "resource.history": "История проверок",
  "resource.noChecks": "Проверок ещё не было. Первая проверка запускается вскоре после добавления сайта.",
  "resource.recentChecks": { one: "Последняя проверка", few: "Последние {count} проверки", many: "Последние {count} проверок", other: "Последние {count} проверки" },
  "resource.chartLabel": { one: "Время ответа: {count} проверка, доступен {up} раз", few: "Время ответа: {count} проверки, доступен {up} раз", many: "Время ответа: {count} проверок, доступен {up} раз", other: "Время ответа: {count} проверки, доступен {up} раз" },
  "resource.screenshot": "Скриншот",
  "resource.noShot": "Скриншота пока нет.",
  "resource.shotAlt": "Скриншот {url}",
  "resource.shotFile": "Изображение скриншота",
  "resource.uploadShot": "Загрузить изображение",
  "resource.chooseImage": "Сначала выберите изображение PNG, JPEG или WebP.",
  "resource.shotUploaded": "Скриншот загружен.",
  "resource.capture": "Снять сейчас",
  "resource.captureQueued": "Скриншот запрошен и скоро появится здесь.",
  "resource.events": "События",

  "feed.title": "Лента новостей",
  "feed.subtitle": "Что происходило с вашими сайтами, сначала новое.",
  "feed.refresh": "Обновить",
  "feed.empty": "Пока ничего не произошло.",
  "feed.added": "Добавлен {target}",
  "feed.up": "{target} снова доступен",
  "feed.down": "{target} недоступен ({code})",
  "feed.changed": "{target} сменил статус",
  "feed.photo": "Новый скриншот {target}",
  "feed.deleted": "{target} удалён",

  "logs.title": "Логи",
  "logs.subtitle": "Журнал приложения в реальном времени. Новые строки появляются по мере записи.",
  "logs.adminOnly": "Только для администраторов",
  "logs.adminOnlyHint": "Если вам нужны логи приложения, обратитесь к администратору.",
  "logs.level": "Уровень",
  "logs.allLevels": "Все уровни",
  "logs.levelAndAbove": "{level} и выше",
  "logs.search": "Поиск",
  "logs.searchPlaceholder": "Фильтр строк…",
  "logs.pause": "Пауза",
  "logs.resume": "Продолжить",
  "logs.resumeWith": { one: "Продолжить ({count} новая строка)", few: "Продолжить ({count} новые строки)", many: "Продолжить ({count} новых строк)", other: "Продолжить ({count} новой строки)" },
  "logs.clear": "Очистить",
  "logs.pdf": "Скачать PDF",
  "logs.empty": "Строк пока нет.",
  "logs.loadFailed": "Не удалось загрузить лог.",
  "logs.conn.connecting": "Подключение…",
  "logs.conn.live": "В эфире",
  "logs.conn.reconnecting": "Переподключение…",
  "logs.conn.offline": "Обновления в реальном времени недоступны",

  "notFound.title": "Страница не найдена",
  "notFound.text": "По этому адресу ничего нет.",
  "notFound.back": "К задачам",
};

const DICTS = { en, ru };
let lang = "en";
const listeners = new Set();

function detect() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (LANGS.includes(saved)) return saved;
  } catch {
    /* storage may be disabled */
  }
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const p of prefs) {
    const base = String(p).toLowerCase().split("-")[0];
    if (LANGS.includes(base)) return base;
  }
  return "en";
}

export function initLang() {
  lang = detect();
  document.documentElement.lang = lang;
  applyStatic(document);
}

export function getLang() {
  return lang;
}

export function setLang(next) {
  if (!LANGS.includes(next) || next === lang) return;
  lang = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    /* ignore */
  }
  document.documentElement.lang = lang;
  applyStatic(document);
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function t(key, params) {
  let value = DICTS[lang][key];
  if (value === undefined) value = en[key];
  if (value === undefined) return key;
  if (typeof value === "object") {
    const count = params && typeof params.count === "number" ? params.count : 0;
    let form = "other";
    try {
      form = new Intl.PluralRules(lang).select(count);
    } catch {
      /* ignore */
    }
    value = value[form] ?? value.other;
  }
  if (params) value = value.replace(/\{(\w+)\}/g, (m, name) => (params[name] !== undefined && params[name] !== null ? String(params[name]) : m));
  return value;
}

/** Fill [data-i18n] text and [data-i18n-attr="attr:key;attr:key"] attributes. */
export function applyStatic(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, k] = pair.split(":").map((s) => s.trim());
      if (attr && k) el.setAttribute(attr, t(k));
    }
  }
}
